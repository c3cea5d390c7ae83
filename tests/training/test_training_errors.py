"""Failures end with one ``error`` event and exit status 1, before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.jobs import lookup_rows, run_training, write_job


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sft": {"learning_rate": -1}}, "sft.learning_rate"),
        ({"lora": {"rank": 8}}, "lora.rank"),
        ({"dpo": {"enabled": True, "variant": "KTO"}}, "dpo.variant"),
        ({"base_model_path": "/nonexistent/model"}, "base_model_path"),
        ({"dpo": {"enabled": True}}, "no row has a rejected_message"),
    ],
)
def test_training_bad_job_reports_error(
    learnable_dir: Path, tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    done = run_training(write_job(tmp_path / "job", learnable_dir, lookup_rows(), **overrides))
    assert done.returncode == 1
    assert len(done.events) == 1
    (event,) = done.events
    assert event["event"] == "error" and message in event["message"]
    assert json.loads((tmp_path / "job" / "training_log.jsonl").read_text()) == event
    assert not (tmp_path / "job" / "adapter").exists()


def test_training_missing_train_file_reports_error(learnable_dir: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job", learnable_dir, lookup_rows())
    (job / "train.jsonl").unlink()
    done = run_training(job)
    assert done.returncode == 1
    assert done.events[-1]["event"] == "error" and "train.jsonl" in done.events[-1]["message"]
