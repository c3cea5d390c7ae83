"""DPO after SFT, and continuing an earlier adapter, through the real child process."""

from __future__ import annotations

from pathlib import Path

from training.jobs import Finished, lookup_rows, run_training, write_job

DPO = {
    "enabled": True,
    "variant": "DPO",
    "num_epochs": 4,
    "learning_rate": 5e-3,
    "batch_size": 8,
    "beta": 0.1,
}


def test_dpo_raises_reward_margin(learnable_dir: Path, tmp_path: Path) -> None:
    sft = {"enabled": True, "num_epochs": 5, "learning_rate": 1e-2, "batch_size": 8, "warmup_ratio": 0.0}
    job = write_job(
        tmp_path / "job", learnable_dir, lookup_rows(rejected=True), sft=sft, dpo={**DPO, "sft_weight": 1.0}
    )
    done = run_training(job)
    assert done.returncode == 0, done.stderr[-3000:]
    stages = [(e["event"], e.get("stage")) for e in done.events if e["event"] in ("start", "done")]
    assert stages == [("start", "sft"), ("start", "dpo"), ("done", None)]
    dpo_events = [e for e in done.events if e["event"] == "progress" and e["stage"] == "dpo"]
    assert all("reward_margin" in e and "reward_accuracy" in e for e in dpo_events)
    metrics = done.metrics
    assert metrics["dpo_steps"] == 8 and metrics["dpo_rows"] == 16
    assert metrics["dpo_reward_margin_last"] > metrics["dpo_reward_margin_first"] + 0.1
    assert metrics["dpo_reward_accuracy_last"] >= 0.75


def test_apo_zero_without_sft_stage(learnable_dir: Path, tmp_path: Path) -> None:
    dpo = {**DPO, "variant": "APO Zero", "sft_weight": 0.0}
    job = write_job(
        tmp_path / "job", learnable_dir, lookup_rows(rejected=True), sft={"enabled": False}, dpo=dpo
    )
    done = run_training(job)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sft_steps" not in done.metrics
    assert done.metrics["dpo_reward_margin_last"] > done.metrics["dpo_reward_margin_first"]


def test_continue_from_init_adapter(
    sft_job: tuple[Path, Finished], learnable_dir: Path, tmp_path: Path
) -> None:
    first_job, first = sft_job
    sft = {"enabled": True, "num_epochs": 2, "learning_rate": 1e-3, "batch_size": 8, "warmup_ratio": 0.0}
    job = write_job(
        tmp_path / "job", learnable_dir, lookup_rows(), sft=sft, init_adapter_path=str(first_job / "adapter")
    )
    done = run_training(job)
    assert done.returncode == 0, done.stderr[-3000:]
    # It starts where the first job ended, not from a fresh (zero) adapter's loss.
    assert done.metrics["sft_first_loss"] < 0.2 < first.metrics["sft_first_loss"]
    assert done.metrics["hyperparameters"]["init_adapter_path"] == str(first_job / "adapter")
