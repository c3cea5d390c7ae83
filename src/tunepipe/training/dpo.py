"""Preference tuning (DPO or APO-zero) on rows that carry a ``rejected_message``.

Runs on the adapter SFT has just trained (or the one the job continues). No second model is
loaded: given a ``PeftModel``, TRL copies the adapter into a frozen ``ref`` adapter and uses it
as the reference policy, so the reference is the model as it was when this stage began.

A weighted NLL term on the chosen answer (TRL's ``sft`` loss type, ``sft_weight``) keeps the
chosen answer likely: plain DPO at a high learning rate can raise the margin by pushing both
answers down until the model collapses. The rows arrive tokenized, exactly as serving
tokenizes (see :mod:`tunepipe.training.data`); :class:`_PretokenizedDPOTrainer` stops TRL from
tokenizing them a second time from text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trl import DPOConfig, DPOTrainer

from tunepipe.training.config import TrainingConfig
from tunepipe.training.events import EventLog
from tunepipe.training.progress import ProgressCallback
from tunepipe.training.runtime import Runtime, shared_args

LOSS_TYPES = {"DPO": "sigmoid", "APO Zero": "apo_zero"}


class _PretokenizedDPOTrainer(DPOTrainer):
    """DPOTrainer that takes ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` as given."""

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        if "prompt_ids" in dataset.column_names:
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)


def loss_spec(variant: str, sft_weight: float) -> tuple[list[str], list[float]]:
    """TRL ``loss_type`` and ``loss_weights`` for a variant and an SFT-term weight."""
    if sft_weight > 0:
        return [LOSS_TYPES[variant], "sft"], [1.0, sft_weight]
    return [LOSS_TYPES[variant]], [1.0]


def dpo_dataset(examples: list[dict[str, list[int]]]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(
        {key: [e[key] for e in examples] for key in ("prompt_ids", "chosen_ids", "rejected_ids")}
    )


def run_dpo(
    model: Any,
    tokenizer: Any,
    examples: list[dict[str, list[int]]],
    config: TrainingConfig,
    runtime: Runtime,
    events: EventLog,
    output_dir: Path,
) -> ProgressCallback:
    """Train ``model``'s adapter in place; returns the callback holding losses and margins."""
    settings = config.dpo
    loss_type, loss_weights = loss_spec(settings.variant, settings.sft_weight)
    args = DPOConfig(
        **shared_args(
            config,
            runtime,
            output_dir,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            num_epochs=settings.num_epochs,
        ),
        beta=settings.beta,
        loss_type=loss_type,
        loss_weights=loss_weights,
        lr_scheduler_type="linear",
        max_length=config.max_seq_len,
        precompute_ref_log_probs=False,
    )
    progress = ProgressCallback(events, "dpo", len(examples))
    trainer = _PretokenizedDPOTrainer(
        model=model,
        args=args,
        train_dataset=dpo_dataset(examples),
        processing_class=tokenizer,
        callbacks=[progress],
    )
    trainer.train()
    return progress
