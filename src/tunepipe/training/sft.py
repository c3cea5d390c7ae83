"""Supervised fine-tuning: next-token loss on the final assistant message of every row.

The rows arrive tokenized (see :mod:`tunepipe.training.data`) with their labels already masked
to the answer, so TRL neither renders chat templates nor re-tokenizes anything; its trainer
only batches and optimises. The loss is the model's own (:class:`_ModelLossSFTTrainer`): TRL's
fused LM head, which projects in tiles and also computes entropy and accuracy for its logs,
measured 25 % slower on a CPU under bf16 autocast (216 against 278 tok/s, SmolLM2-135M).

Batches are padded, with rows of similar length grouped into the same batch (by a seeded
sampler, so runs stay reproducible): chat rows vary a lot in length, and a batch of one long
and seven short rows is mostly padding. TRL's padding-free mode was measured and left off: it
lays a batch end to end in one sequence, and without FlashAttention (CPUs, plain SDPA) that
sequence pays attention over its full flattened length, quadratically, with a materialised
block mask whose memory grows the same way.

With early stopping on (the default when the caller set no epochs: see
:mod:`tunepipe.training.early_stopping`), a seeded slice of the rows is held out and evaluated a
few times an epoch; when its loss levels off, a second trainer goes on from the best
evaluation's weights with the same optimizer and cools the learning rate down to zero on every
row, the held-out ones included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import Trainer
from trl import SFTConfig, SFTTrainer

from tunepipe.training.config import EarlyStopping, TrainingConfig
from tunepipe.training.early_stopping import Cooldown, ValidationStop, cooldown_schedule, split_validation
from tunepipe.training.events import EventLog
from tunepipe.training.progress import ProgressCallback
from tunepipe.training.runtime import Runtime, batch_split, shared_args, warmup


class _ModelLossSFTTrainer(SFTTrainer):
    """SFTTrainer with ``transformers.Trainer``'s loss (the model's, from ``labels``), counting
    the tokens it trains on into the progress callback."""

    progress: ProgressCallback | None = None

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        inputs = {**inputs, "use_cache": False}
        if self.progress is not None and model.training:  # validation batches are not trained on
            self.progress.tokens += int(inputs["attention_mask"].sum())
        return Trainer.compute_loss(
            self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )


def sft_dataset(examples: list[dict[str, list[int]]]) -> Any:
    """A ``datasets`` table of ``input_ids``, ``labels`` (-100 outside the answer) and ``length``."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "input_ids": [e["input_ids"] for e in examples],
            "length": [len(e["input_ids"]) for e in examples],  # read by the length-grouped sampler
            "labels": [
                [t if m else -100 for t, m in zip(e["input_ids"], e["completion_mask"], strict=True)]
                for e in examples
            ],
        }
    )


@dataclass(slots=True)
class SftResult:
    progress: ProgressCallback  # the stage's losses and timing
    stop: ValidationStop | None  # early stopping's record, when it was on
    cooldown: Cooldown | None = None  # the second phase of an early-stopped run


def run_sft(
    model: Any,
    tokenizer: Any,
    examples: list[dict[str, list[int]]],
    config: TrainingConfig,
    runtime: Runtime,
    events: EventLog,
    output_dir: Path,
) -> SftResult:
    """Train ``model``'s adapter in place (with early stopping when the settings ask for it)."""
    settings = config.sft
    early = settings.early_stopping
    train, validation = split_validation(examples, early, config.seed) if early else (examples, [])
    steps_per_epoch = max(1, math.ceil(len(train) / settings.batch_size))
    micro, _ = batch_split(settings.batch_size, runtime.device)
    evaluation: dict[str, Any] = {}
    if early and validation:
        evaluation = {
            "eval_strategy": "steps",
            "eval_steps": max(1, steps_per_epoch // early.evals_per_epoch),
            "per_device_eval_batch_size": micro,
            "prediction_loss_only": True,
        }
    common = {
        **shared_args(
            config,
            runtime,
            output_dir,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            num_epochs=settings.num_epochs,
        ),
        # Lengths were checked against max_seq_len when the rows were tokenized.
        "max_length": None,
        "padding_free": False,
        "packing": False,
        "train_sampling_strategy": "group_by_length",
        "completion_only_loss": False,  # the labels already carry the mask
        "dataset_num_proc": None,
    }
    args = SFTConfig(
        **common,
        **evaluation,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=warmup(settings.warmup_ratio),
    )
    progress = ProgressCallback(events, "sft", len(train))
    stop = None
    if early and validation:
        stop = ValidationStop(
            early, evaluation["eval_steps"], len(train), len(validation), settings.batch_size
        )
    trainer = _ModelLossSFTTrainer(
        model=model,
        args=args,
        train_dataset=sft_dataset(train),
        eval_dataset=sft_dataset(validation) if stop is not None else None,
        processing_class=tokenizer,
        callbacks=[progress, *([stop] if stop is not None else [])],
    )
    trainer.progress = progress
    trainer.train()
    cooldown = None
    if stop is not None and stop.decided_at is not None and stop.decided_epoch is not None:
        stop.restore_best(model)
        steps = stop.cooldown_steps(stop.decided_at, stop.decided_epoch)
        if steps > 0:
            rows = train + validation * stop.catch_up(stop.decided_epoch)
            cooldown = _cool_down(trainer, model, tokenizer, progress, rows, steps, common, stop.settings)
    return SftResult(progress, stop, cooldown)


def _cool_down(
    trainer: _ModelLossSFTTrainer,
    model: Any,
    tokenizer: Any,
    progress: ProgressCallback,
    rows: list[dict[str, list[int]]],
    steps: int,
    common: dict[str, Any],
    settings: EarlyStopping,
) -> Cooldown:
    """The second phase of an early-stopped run: ``steps`` more steps on ``rows`` (every row, the
    held-out ones repeated to catch up: their work of choosing the stop is done), with the
    learning rate falling from where the first phase left it to zero. The optimizer's state
    carries over."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate's wrapper
    schedule = cooldown_schedule(optimizer, trainer.lr_scheduler, steps, settings.cooldown_shape)
    progress.continue_from(trainer.state.global_step, float(trainer.state.epoch or 0.0), len(rows))
    second = _ModelLossSFTTrainer(
        model=model,
        args=SFTConfig(**{**common, "max_steps": steps}),
        train_dataset=sft_dataset(rows),
        processing_class=tokenizer,
        callbacks=[progress],
        optimizers=(optimizer, schedule),
    )
    second.progress = progress
    second.train()
    batch = common["per_device_train_batch_size"] * common["gradient_accumulation_steps"]
    return Cooldown(steps, len(rows), steps / math.ceil(len(rows) / batch))
