"""Early stopping for SFT: hold out a few training rows, watch their loss, stop when it levels off.

OpenPipe's rule trains ``clamp(10,000 / rows, 1, 10)`` epochs whatever happens; on a small,
regular dataset the model has learned the task long before the last one (in the distillation
test the training loss was 0.0016 after four of ten epochs). Here the rule is only the upper
bound: :func:`split_validation` sets aside a seeded slice of the rows, the trainer measures
their loss a few times an epoch, and :class:`ValidationStop` decides when to stop: once
``patience`` evaluations in a row have not improved on the best by ``min_improvement`` (a share
of it, so the test means the same at a loss of 2 and of 0.01), or as soon as the loss is down to
``good_loss``. The second rule is for tasks with one right answer (extraction, classification,
distillation of a deterministic teacher): there the loss keeps falling by a steady share every
epoch long after every held-out answer is right, because further epochs only make the model
surer (measured on the distillation task: 0.019 nats a token at epoch 2.9, still falling 10-15 %
each half epoch at epoch 6). A mean loss of 0.02 nats a token on answers the model never trained
on is that point: its greedy answers are the held-out ones.

Stopping is a *cool-down*, not a cut. A model stopped in the middle of a learning-rate schedule
is left at a high rate, noisier than one that was annealed: measured on the distillation task, a
cosine run cut at half its length answered 0.97 of held-out prompts right where the full run
answered 1.00. So early-stopped runs train at a constant rate after warm-up, and when the
validation loss levels off (or the epoch budget nears its end) the rate decays linearly to zero
over ``cooldown_share`` of the steps trained so far, the last evaluation comes after it, and the
adapter keeps the weights of the best evaluation (almost always the last).

transformers' own ``EarlyStoppingCallback`` judges improvement by an absolute threshold, cuts
training where it is, and restores the best model from checkpoints written to disk; a relative
threshold, a cool-down and an in-memory copy of the LoRA weights (a few MB) suit adapters trained
in a child process better.
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
    """Cools training down when the validation loss stops improving; keeps the best weights.

    ``eval_steps``: optimizer steps between evaluations (a cool-down lasts at least that long, so
    at least one evaluation sees its result).
    """

    settings: EarlyStopping
    eval_steps: int
    history: list[Evaluation] = field(default_factory=list)
    best: Evaluation | None = None
    stopped_early: bool = False  # the loss levelled off before the epoch budget was spent
    cooldown_from: int | None = None  # the step the learning rate started to decay at
    cooldown_to: int | None = None  # the step training ends at
    _since_improvement: int = 0
    _best_weights: dict[str, Any] | None = None

    def _cooldown_steps(self, step: int) -> int:
        return max(self.eval_steps, round(self.settings.cooldown_share * step))

    def _cool_down(self, state: TrainerState, scheduler: Any, end: int) -> None:
        """Decay the learning rate linearly from where it is to zero at step ``end``."""
        start = state.global_step
        self.cooldown_from, self.cooldown_to = start, end
        inner = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps the torch scheduler
        lambdas = getattr(inner, "lr_lambdas", None)
        if lambdas is None:  # not a LambdaLR: stop at the end, without a decay of our own
            return
        for i, current in enumerate(lambdas):
            factor = float(current(start))
            lambdas[i] = _LinearDecay(factor, start, end)

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # A run that never levels off still ends annealed: cool down into the last steps.
        if self.cooldown_to is None and state.max_steps - state.global_step <= self._cooldown_steps(
            state.global_step
        ):
            self._cool_down(state, kwargs.get("lr_scheduler"), state.max_steps)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.cooldown_to is not None and state.global_step >= self.cooldown_to:
            control.should_training_stop = True

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
        done = self._since_improvement >= self.settings.patience or loss <= self.settings.good_loss
        if done and self.cooldown_to is None:
            end = min(state.max_steps, state.global_step + self._cooldown_steps(state.global_step))
            self.stopped_early = end < state.max_steps
            self._cool_down(state, kwargs.get("lr_scheduler"), end)

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
            "sft_cooldown_from_step": self.cooldown_from,
            "sft_validation_history": [[e.step, round(e.epoch, 3), e.loss] for e in self.history],
        }


@dataclass(frozen=True, slots=True)
class _LinearDecay:
    """A learning-rate factor falling linearly from ``factor`` at ``start`` to 0 at ``end``."""

    factor: float
    start: int
    end: int

    def __call__(self, step: int) -> float:
        return self.factor * max(0.0, (self.end - step) / max(1, self.end - self.start))
