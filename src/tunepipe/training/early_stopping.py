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
answered 1.00. So early-stopped runs train in two phases. The first runs at a constant rate
after warm-up on the rows not held out, until the validation loss levels off (or the epoch
budget leaves only room for the cool-down); :class:`ValidationStop` ends it and keeps the best
evaluation's weights. The second, the cool-down (:func:`cooldown_schedule`), starts from those
weights with the optimizer's state and takes the rate to zero along half a cosine wave over
``cooldown_share`` of the steps trained so far, and at least ``cooldown_min_epochs`` passes over
**every** row, each held-out row repeated once more for every epoch it missed
(:meth:`ValidationStop.catch_up`): the held-out rows have done their work of choosing the stop,
and leaving them out loses what only they teach. That was measured: in the distillation dataset
the one sentence about Basel was in the validation slice, and every run that never trained on it
answered "Baltic" for a held-out sentence about Basel, whatever its length or learning rate;
trained on once, in a cool-down, it still did.

transformers' own ``EarlyStoppingCallback`` judges improvement by an absolute threshold, cuts
training where it is, and restores the best model from checkpoints written to disk; a relative
threshold, a cool-down that trains the held-out rows too, and an in-memory copy of the LoRA
weights (a few MB) suit adapters trained in a child process better.
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
    """Ends the first phase when the validation loss stops improving (or the budget leaves only
    the cool-down); keeps the best evaluation's weights.

    ``eval_steps``: optimizer steps between evaluations; ``train_rows`` and ``validation_rows``
    the two parts of the rows, ``batch_size`` the rows a step (they size the cool-down).
    """

    settings: EarlyStopping
    eval_steps: int
    train_rows: int = 0
    validation_rows: int = 0
    batch_size: int = 1
    history: list[Evaluation] = field(default_factory=list)
    best: Evaluation | None = None
    reason: str | None = None  # why the first phase ended: "good_loss", "levelled_off" or "budget"
    decided_at: int | None = None  # the step it ended at
    decided_epoch: float | None = None
    budget: int | None = None  # the epoch rule's steps: the first phase and the cool-down fit in it
    _since_improvement: int = 0
    _best_weights: dict[str, Any] | None = None

    def catch_up(self, epoch: float) -> int:
        """How many times each held-out row is in the cool-down's rows after a first phase of
        ``epoch`` epochs: once for the cool-down's own pass, and once for each epoch it missed,
        so that every row ends up trained on about equally often."""
        return max(1, round(1 + epoch))

    def cooldown_rows(self, epoch: float) -> int:
        return self.train_rows + self.validation_rows * self.catch_up(epoch)

    def _wanted(self, step: int, epoch: float) -> int:
        share = round(self.settings.cooldown_share * step)
        one_pass = math.ceil(self.cooldown_rows(epoch) / self.batch_size)
        return max(1, share, round(self.settings.cooldown_min_epochs * one_pass))

    def cooldown_steps(self, step: int, epoch: float) -> int:
        """The cool-down after a first phase of ``step`` steps and ``epoch`` epochs (within the
        budget)."""
        wanted = self._wanted(step, epoch)
        return max(0, min(wanted, (self.budget or step + wanted) - step))

    @property
    def stopped_early(self) -> bool:
        """The loss levelled off before the epoch budget was spent."""
        if self.decided_at is None or self.decided_epoch is None or self.budget is None:
            return False
        return self.decided_at + self.cooldown_steps(self.decided_at, self.decided_epoch) < self.budget

    def _decide(self, state: TrainerState, control: TrainerControl, reason: str) -> None:
        if self.decided_at is None:
            self.reason, self.decided_at = reason, state.global_step
            self.decided_epoch = float(state.epoch or 0.0)
        control.should_training_stop = True

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.budget = state.max_steps

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # A run that never levels off still ends annealed: the cool-down takes the last steps.
        step = state.global_step
        if state.max_steps - step <= self._wanted(step, float(state.epoch or 0.0)):
            self._decide(state, control, "budget")

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
        if loss <= self.settings.good_loss:
            self._decide(state, control, "good_loss")
        elif self._since_improvement >= self.settings.patience:
            self._decide(state, control, "levelled_off")

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

    def metrics(self, train_losses: list[tuple[int, float]], cooldown: Cooldown | None) -> dict[str, Any]:
        """What the model records: the evaluation chosen, its validation loss and the training
        loss then, why and where the first phase ended, the cool-down, and every evaluation."""
        best = self.best
        train_at_best = None
        if best is not None:
            before = [loss for step, loss in train_losses if step <= best.step]
            train_at_best = before[-1] if before else None
        epochs = self.decided_epoch
        if epochs is not None and cooldown is not None:
            epochs += cooldown.epochs
        return {
            "sft_validation_rows": self.validation_rows,
            "sft_early_stopped": self.stopped_early,
            "sft_stop_reason": self.reason,
            "sft_best_step": best.step if best else None,
            "sft_best_epoch": round(best.epoch, 3) if best else None,
            "sft_best_validation_loss": best.loss if best else None,
            "sft_train_loss_at_best": train_at_best,
            "sft_epochs_trained": round(epochs, 3) if epochs is not None else None,
            "sft_cooldown_from_step": self.decided_at,
            "sft_cooldown_steps": cooldown.steps if cooldown else 0,
            "sft_cooldown_rows": cooldown.rows if cooldown else 0,
            "sft_validation_history": [[e.step, round(e.epoch, 3), e.loss] for e in self.history],
        }


@dataclass(frozen=True, slots=True)
class Cooldown:
    """What the cool-down trained: its steps, on how many rows, and as how many epochs of them."""

    steps: int
    rows: int
    epochs: float


def cooldown_schedule(optimizer: Any, scheduler: Any, steps: int, shape: str) -> Any:
    """A scheduler for ``optimizer`` that takes the learning rate from where ``scheduler`` left it
    down to zero over ``steps`` steps."""
    from torch.optim.lr_scheduler import LambdaLR

    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps the torch scheduler
    lambdas = getattr(inner, "lr_lambdas", None)
    step = int(getattr(inner, "last_epoch", 0))
    factors = [float(f(step)) for f in lambdas] if lambdas else [1.0] * len(optimizer.param_groups)
    return LambdaLR(optimizer, [_Decay(f, steps, shape) for f in factors])


@dataclass(frozen=True, slots=True)
class _Decay:
    """A learning-rate factor falling from ``factor`` at step 0 to 0 at ``steps``, along a
    straight line or half a cosine wave."""

    factor: float
    steps: int
    shape: str = "cosine"

    def __call__(self, step: int) -> float:
        done = min(1.0, max(0.0, step / max(1, self.steps)))
        if self.shape == "linear":
            return self.factor * (1.0 - done)
        return self.factor * 0.5 * (1.0 + math.cos(math.pi * done))
