"""Early stopping through the real child process: a seeded slice of the rows is held out, its
loss is measured a few times an epoch, the first phase ends once it levels off (well before the
epoch budget), and a cool-down on every row, the held-out ones included, anneals the learning
rate to zero from the best evaluation's weights; without it, every epoch is trained."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from training.jobs import ANSWERS, SUBJECTS, Finished, run_training, write_job
from tunepipe.training.config import EarlyStopping
from tunepipe.training.early_stopping import (
    ValidationStop,
    cooldown_schedule,
    split_validation,
    validation_size,
)

EPOCHS = 60


def rows(n: int) -> list[dict[str, Any]]:
    """``n`` rows of the lookup task: a subject word and a number in, the subject's name out."""
    out = []
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        out.append(
            {
                "messages": [{"role": "user", "content": f"{subject} {i}"}],
                "output": {"role": "assistant", "content": ANSWERS[i % len(SUBJECTS) % 8]},
                "rejected_message": None,
                "tools": None,
                "tool_choice": None,
                "response_format": None,
            }
        )
    return out


def settings(**kw: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "num_epochs": EPOCHS,
        "learning_rate": 1e-2,
        "batch_size": 8,
        "warmup_ratio": 0.05,
        **kw,
    }


@pytest.fixture(scope="module")
def stopped(learnable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    early = {"evals_per_epoch": 1, "patience": 2, "min_improvement": 0.05}
    job = write_job(
        tmp_path_factory.mktemp("early"), learnable_dir, rows(48), sft=settings(early_stopping=early)
    )
    return run_training(job)


def test_validation_slice_is_seeded_and_bounded() -> None:
    s = EarlyStopping()
    assert [validation_size(n, s) for n in (10, 39, 40, 216, 5000)] == [0, 0, 4, 22, 100]
    items = list(range(216))
    train, held = split_validation(items, s, seed=7)
    assert len(held) == 22 and sorted(train + held) == items and not set(train) & set(held)
    assert split_validation(items, s, seed=7) == (train, held)
    assert split_validation(items, s, seed=8)[1] != held


def test_early_stopping_stops_before_the_epoch_budget(stopped: Finished) -> None:
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    m = stopped.metrics
    total = stopped.events[0]["total_steps"]
    assert m["sft_validation_rows"] == 5 and m["train_rows"] == 48  # a tenth, rounded
    assert m["sft_early_stopped"] is True
    assert m["sft_steps"] < total / 2, (m["sft_steps"], total)
    assert m["sft_epochs_trained"] < EPOCHS / 2
    # The chosen epoch and both losses are recorded; the best is the lowest validation loss seen.
    history = m["sft_validation_history"]
    assert len(history) >= 3 and m["sft_best_validation_loss"] == min(loss for _, _, loss in history)
    assert m["sft_best_epoch"] <= m["sft_epochs_trained"] and m["sft_train_loss_at_best"] is not None
    assert m["sft_best_validation_loss"] < history[0][2]  # it learned before it stopped
    evals = [e for e in stopped.events if e["event"] == "progress" and "eval_loss" in e]
    assert [e["eval_loss"] for e in evals] == [loss for _, _, loss in history]
    assert m["sft_stop_reason"] in ("levelled_off", "good_loss")


def test_the_cool_down_trains_every_row_as_the_rate_falls_to_zero(stopped: Finished) -> None:
    m = stopped.metrics
    first = m["sft_cooldown_from_step"]
    # The first phase ends at an evaluation; the cool-down is at least one pass over every row,
    # the 43 trained on and the 5 held out, these once more for each epoch they missed.
    assert first == m["sft_validation_history"][-1][0]
    missed = m["sft_validation_history"][-1][1]
    assert m["sft_cooldown_rows"] == 43 + 5 * round(1 + missed)
    assert m["sft_cooldown_steps"] >= math.ceil(m["sft_cooldown_rows"] / 8)
    assert m["sft_steps"] == first + m["sft_cooldown_steps"]
    steps = [e for e in stopped.events if e["event"] == "progress" and "loss" in e]
    # One stage, one start: the cool-down's steps count on from the first phase's.
    assert [e["step"] for e in steps] == list(range(1, m["sft_steps"] + 1))
    assert sum(e["event"] == "start" for e in stopped.events) == 1
    assert steps[-1]["total_steps"] == m["sft_steps"]
    rates = [e["learning_rate"] for e in steps[first:]]
    peak = steps[first - 1]["learning_rate"]
    assert peak > 0 and all(a >= b for a, b in zip([peak, *rates], rates, strict=False))
    assert rates[-1] < peak * 0.1  # cosine: the last step is close to zero
    epochs = [e["epoch"] for e in steps]
    assert epochs == sorted(epochs) and m["sft_epochs_trained"] >= epochs[first - 1] + 1


def test_without_early_stopping_every_epoch_is_trained(learnable_dir: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "full", learnable_dir, rows(48), sft=settings(num_epochs=4))
    done = run_training(job)
    m = done.metrics
    assert m["sft_steps"] == done.events[0]["total_steps"] == 24  # 48 rows / 8 a batch × 4 epochs
    assert "sft_early_stopped" not in m
    assert not any("eval_loss" in e for e in done.events)


def test_the_cool_down_lasts_a_pass_over_every_row_or_a_share_of_the_run_within_the_budget() -> None:
    stop = ValidationStop(EarlyStopping(), eval_steps=12, train_rows=196, validation_rows=22, batch_size=8)
    stop.budget = 250
    # After 2.88 epochs each held-out row is in the cool-down 4 times: 196 + 88 rows, 36 steps.
    assert (stop.catch_up(2.88), stop.cooldown_rows(2.88)) == (4, 284)
    assert [stop.cooldown_steps(s, s / 25) for s in (25, 72, 240, 250)] == [30, 36, 10, 0]
    longer = ValidationStop(EarlyStopping(cooldown_share=0.5), 12, 196, 22, 8)
    assert longer.cooldown_steps(100, 4.0) == 50  # a share of a long run beats one pass
    stop.decided_at, stop.decided_epoch = 72, 2.88
    assert stop.stopped_early
    stop.decided_at, stop.decided_epoch = 214, 8.56  # 214 + 36 = the budget: not cut short
    assert not stop.stopped_early


@pytest.mark.parametrize("shape", ["cosine", "linear"])
def test_the_cool_down_schedule_falls_from_the_first_phases_rate_to_zero(shape: str) -> None:
    import torch
    from transformers import get_constant_schedule_with_warmup

    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([weight], lr=2e-4)
    first = get_constant_schedule_with_warmup(optimizer, num_warmup_steps=10)
    for _ in range(5):  # stopped in the warm-up, at half the rate
        optimizer.step()
        first.step()
    schedule = cooldown_schedule(optimizer, first, 10, shape)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)) and rates[-1] < 1e-5
    fifth = 0.8 if shape == "linear" else 0.5 * (1 + math.cos(math.pi / 5))  # 0.905: slower at first
    assert rates[2] == pytest.approx(1e-4 * fifth)
    assert optimizer.param_groups[0]["lr"] == 0.0
