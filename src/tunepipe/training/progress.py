"""Per-step progress of a training stage, as ``start`` and ``progress`` events.

:class:`ProgressCallback` turns the trainers' per-step logs into events on the job's
:class:`~tunepipe.training.events.EventLog` and remembers what the final metrics need (first
and last loss, reward margins, tokens seen).
"""

from __future__ import annotations

import math
import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunepipe.training.events import EventLog

# TRL's per-step DPO metrics, under the names the events use.
_DPO_KEYS = {"rewards/margins": "reward_margin", "rewards/accuracies": "reward_accuracy"}


class ProgressCallback(TrainerCallback):
    """Emits ``start`` once and ``progress`` after every optimizer step of one stage."""

    def __init__(self, events: EventLog, stage: str, rows: int) -> None:
        self.events = events
        self.stage = stage
        self.rows = rows
        self.losses: list[float] = []
        self.loss_steps: list[tuple[int, float]] = []  # (optimizer step, training loss)
        self.margins: list[float] = []
        self.accuracies: list[float] = []
        self.tokens = 0
        self.steps = 0
        self._started = time.perf_counter()
        self._begun = False
        self._step0 = 0  # steps and epochs trained by an earlier trainer of the same stage
        self._epoch0 = 0.0

    def continue_from(self, step: int, epoch: float, rows: int) -> None:
        """The next trainer goes on with this stage (an early-stopped run's cool-down): its steps
        and epochs count on from ``step`` and ``epoch``, over ``rows`` rows."""
        self._step0, self._epoch0, self.rows = step, epoch, rows

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._begun:
            return
        self._begun = True
        self._started = time.perf_counter()
        self.events.emit(
            {"event": "start", "stage": self.stage, "total_steps": state.max_steps, "rows": self.rows}
        )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs and "eval_loss" in logs:
            self.events.emit(
                {
                    "event": "progress",
                    "stage": self.stage,
                    "step": self._step0 + state.global_step,
                    "total_steps": self._step0 + state.max_steps,
                    "eval_loss": float(logs["eval_loss"]),
                    "epoch": self._epoch0 + float(logs.get("epoch", state.epoch or 0.0)),
                }
            )
            return
        if not logs or "loss" not in logs:  # the end-of-training summary has train_loss instead
            return
        step, total = self._step0 + state.global_step, self._step0 + state.max_steps
        elapsed = self.elapsed
        self.steps = step
        if "num_tokens" in logs:  # TRL's count, where its own loss runs (DPO)
            self.tokens = int(logs["num_tokens"])
        loss = float(logs["loss"])
        self.losses.append(loss)
        self.loss_steps.append((step, loss))
        event: dict[str, Any] = {
            "event": "progress",
            "stage": self.stage,
            "step": step,
            "total_steps": total,
            "loss": loss,
            "learning_rate": float(logs.get("learning_rate", 0.0)),
            "epoch": self._epoch0 + float(logs.get("epoch", state.epoch or 0.0)),
            "eta_s": round(elapsed / step * (total - step), 1) if step else None,
            "tokens_per_s": round(self.tokens / elapsed, 1) if elapsed > 0 else None,
        }
        for key, name in _DPO_KEYS.items():
            if key in logs and math.isfinite(float(logs[key])):
                event[name] = float(logs[key])
        if "reward_margin" in event:
            self.margins.append(event["reward_margin"])
        if "reward_accuracy" in event:
            self.accuracies.append(event["reward_accuracy"])
        self.events.emit(event)
