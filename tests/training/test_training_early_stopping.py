"""Early stopping through the real child process: a seeded slice of the rows is held out, its
loss is measured a few times an epoch, training stops once it levels off (well before the epoch
budget), and the adapter is the one of the best evaluation; without it, every epoch is trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.jobs import ANSWERS, SUBJECTS, Finished, run_training, write_job
from tunepipe.training.config import EarlyStopping
from tunepipe.training.early_stopping import split_validation, validation_size

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


def test_without_early_stopping_every_epoch_is_trained(learnable_dir: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "full", learnable_dir, rows(48), sft=settings(num_epochs=4))
    done = run_training(job)
    m = done.metrics
    assert m["sft_steps"] == done.events[0]["total_steps"] == 24  # 48 rows / 8 a batch × 4 epochs
    assert "sft_early_stopped" not in m
    assert not any("eval_loss" in e for e in done.events)
