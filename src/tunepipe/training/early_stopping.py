"""Early stopping for SFT: hold out a few training rows, watch their loss, stop when it levels off.

OpenPipe's rule trains ``clamp(10,000 / rows, 1, 10)`` epochs whatever happens; on a small,
regular dataset the model has learned the task long before the last one (in the distillation
test the training loss was 0.0016 after four of ten epochs). Here the rule is only the upper
bound: :func:`split_validation` sets aside a seeded slice of the rows, the trainer measures
their loss a few times an epoch, and :class:`ValidationStop` ends training once
``patience`` evaluations in a row have not improved on the best by ``min_improvement`` (a share
of it, so the test means the same at a loss of 2 and of 0.01), then puts the adapter back to the
weights of its best evaluation.

transformers' own ``EarlyStoppingCallback`` judges improvement by an absolute threshold and
restores the best model from checkpoints written to disk; a relative threshold and an in-memory
copy of the LoRA weights (a few MB) suit adapters trained in a child process better.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, TypeVar

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunepipe.training.config import EarlyStopping

T = TypeVar("T")


def validation_size(rows: int, settings: EarlyStopping) -> int:
    """How many of ``rows`` are held out (0: too few rows to spare any, so no early stopping)."""
    if rows < 10 * settings.min_validation_rows:  # a tiny dataset cannot spare any
        return 0
    wanted = max(settings.min_validation_rows, round(rows * settings.validation_share))
    return min(wanted, settings.max_validation_rows, rows // 5)


def split_validation(items: list[T], settings: EarlyStopping, seed: int) -> tuple[list[T], list[T]]:
    """``(train, validation)``: a seeded choice of rows held out, the rest in their order."""
    size = validation_size(len(items), settings)
    if size == 0:
        return items, []
    held = set(random.Random(seed).sample(range(len(items)), size))
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


@dataclass(slots=True)
class Evaluation:
    step: int
    epoch: float
    loss: float


@dataclass(slots=True)
class ValidationStop(TrainerCallback):
    """Stops training when the validation loss stops improving; keeps the best weights."""

    settings: EarlyStopping
    history: list[Evaluation] = field(default_factory=list)
    best: Evaluation | None = None
    stopped_early: bool = False
    _since_improvement: int = 0
    _best_weights: dict[str, Any] | None = None

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        loss = (metrics or {}).get("eval_loss")
        if loss is None or not math.isfinite(loss):
            return
        evaluation = Evaluation(state.global_step, float(state.epoch or 0.0), float(loss))
        self.history.append(evaluation)
        best = self.best
        if best is None or loss < best.loss:
            if best is None or loss < best.loss * (1 - self.settings.min_improvement):
                self._since_improvement = 0
            else:
                self._since_improvement += 1  # lower, but not by enough to call it progress
            self.best = evaluation
            self._keep(kwargs.get("model"))
        else:
            self._since_improvement += 1
        if self._since_improvement >= self.settings.patience and state.global_step < state.max_steps:
            self.stopped_early = True
            control.should_training_stop = True

    def _keep(self, model: Any) -> None:
        if model is None:
            return
        self._best_weights = {
            name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad
        }

    def restore_best(self, model: Any) -> bool:
        """Put the trainable weights back to the best evaluation's; False if there was none."""
        if self._best_weights is None:
            return False
        import torch

        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self._best_weights:
                    p.copy_(self._best_weights[name].to(p.device))
        return True

    def metrics(self, train_losses: list[tuple[int, float]], validation_rows: int) -> dict[str, Any]:
        """What the model records: the epoch chosen, its validation loss and the training loss
        then, where training stopped, and every evaluation."""
        best = self.best
        train_at_best = None
        if best is not None:
            before = [loss for step, loss in train_losses if step <= best.step]
            train_at_best = before[-1] if before else None
        return {
            "sft_validation_rows": validation_rows,
            "sft_early_stopped": self.stopped_early,
            "sft_best_step": best.step if best else None,
            "sft_best_epoch": round(best.epoch, 3) if best else None,
            "sft_best_validation_loss": best.loss if best else None,
            "sft_train_loss_at_best": train_at_best,
            "sft_epochs_trained": round(self.history[-1].epoch, 3) if self.history else None,
            "sft_validation_history": [[e.step, round(e.epoch, 3), e.loss] for e in self.history],
        }
