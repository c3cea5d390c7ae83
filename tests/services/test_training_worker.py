"""The training worker against real SQLite and Postgres and the real training child process,
on a tiny locally built model: a job runs to DEPLOYED with its adapter stored; a cancelled job
stops its child; a child killed by SIGKILL is retried (or fails once attempts are spent); a job
whose worker died is recovered by another worker and completes; shutting down hands the job
back. The model is tiny, so a run takes seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update

from conftest import migrated_engine
from engine.tiny import build_tiny_model
from tunepipe.db import base_models, jobs
from tunepipe.db import fine_tunes as repo
from tunepipe.db.fine_tunes import FineTune
from tunepipe.db.projects import create_project
from tunepipe.db.schema import jobs as jobs_table
from tunepipe.domain.clock import now_ms
from tunepipe.domain.fine_tunes import resolve_hyperparameters
from tunepipe.domain.ids import uuid7
from tunepipe.services.fine_tune_files import adapter_dir
from tunepipe.services.training_run import exit_message
from tunepipe.services.training_worker import STALE_MESSAGE, TrainingWorker
from tunepipe.settings import Settings

TRAIN_ROWS = 12
# A step of the tiny model takes a few milliseconds: 20 epochs (40 steps) last about a second,
# long enough to see progress; tests that stop a child mid-training train far longer.
LONG = 200


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database of its own per test (Postgres: a fresh schema, dropped after)."""
    yield from migrated_engine(request.param, tmp_path)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine("sqlite", tmp_path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        worker_poll_s=0.1,
        job_heartbeat_s=0.2,
        job_stale_after_s=60,
        training_device="cpu",
        default_model=False,
    )


def make_job(
    engine: Engine,
    model_dir: Path | None,
    *,
    epochs: float = 20,
    max_attempts: int = 2,
    root_model: str = "tiny",
) -> tuple[FineTune, jobs.Job]:
    """A QUEUED fine-tune of ``tiny`` (registered at ``model_dir``) with its rows and its job."""
    project = create_project(engine, f"p-{uuid.uuid4().hex[:8]}").id
    if model_dir is not None:
        base_models.add(engine, name="tiny", source=str(model_dir), path=str(model_dir), kind="dir")
    now = now_ms()
    ft = FineTune(
        id=uuid7(),
        project_id=project,
        slug=f"ft-{uuid.uuid4().hex[:8]}",
        dataset_id=None,
        provider="openpipe",
        base_model=root_model,
        root_model=root_model,
        parent_id=None,
        status="QUEUED",
        error_message=None,
        description=None,
        default_temperature=None,
        training_config={},
        hyperparameters=resolve_hyperparameters(
            enable_sft=True,
            enable_preference=False,
            sft={"learning_rate_multiplier": 20, "num_epochs": epochs},
            preference={},
            train_rows=TRAIN_ROWS,
            preference_rows=0,
        ),
        pruning_rule_ids=[],
        progress=None,
        metrics=None,
        train_rows=TRAIN_ROWS,
        test_rows=2,
        created_at=now,
        updated_at=now,
        training_started_at=None,
        training_finished_at=None,
    )
    repo.create(engine, ft)
    rows = [(f"e{i:03d}", "TRAIN" if i < TRAIN_ROWS else "TEST", _row(i)) for i in range(TRAIN_ROWS + 2)]
    repo.add_entries(engine, ft.id, rows)
    return ft, jobs.enqueue(engine, "train", project, ft.id, max_attempts=max_attempts)


def _row(i: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": f"where is the {['cat', 'dog', 'car'][i % 3]} {i}"}],
        "output": {"role": "assistant", "content": "the cat sat on a mat"},
        "rejected_message": None,
        "tools": None,
        "tool_choice": None,
        "response_format": None,
    }


def fine_tune(engine: Engine, ft_id: str) -> FineTune:
    got = repo.get_by_id(engine, ft_id)
    assert got is not None
    return got


def job_row(engine: Engine, job_id: str) -> jobs.Job:
    got = jobs.get(engine, job_id)
    assert got is not None
    return got


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def training_started(engine: Engine, worker: TrainingWorker, ft_id: str) -> int:
    """Wait until the child has loaded the model and trains (a progress event arrived); its pid."""

    async def check() -> bool:
        progress = (await asyncio.to_thread(fine_tune, engine, ft_id)).progress or {}
        return worker.child_pid is not None and progress.get("stage") == "sft"

    await eventually(check)
    pid = worker.child_pid
    assert pid is not None
    return pid


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
async def test_worker_trains_a_fine_tune_to_deployed(
    engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(engine, tiny_model)
    evaluated: list[tuple[FineTune, FineTune]] = []

    async def evaluate(model: FineTune) -> dict[str, Any]:
        evaluated.append((model, await asyncio.to_thread(fine_tune, engine, model.id)))
        return {"test_exact_match": 0.5}

    worker = TrainingWorker(settings, engine, evaluate=evaluate, worker_id="w-test")
    seen: list[dict[str, Any]] = []
    run = asyncio.create_task(worker.run_once())
    while not run.done():
        progress = (await asyncio.to_thread(fine_tune, engine, ft.id)).progress
        if progress and progress not in seen:
            seen.append(progress)
        await asyncio.sleep(0.05)
    assert run.result() is True

    done = fine_tune(engine, ft.id)
    assert done.status == "DEPLOYED" and done.error_message is None
    assert done.training_started_at is not None and done.training_finished_at is not None
    metrics = done.metrics or {}
    assert metrics["train_rows"] == TRAIN_ROWS and metrics["sft_steps"] == 40
    assert metrics["sft_final_loss"] < metrics["sft_first_loss"]
    assert metrics["test_exact_match"] == 0.5
    assert done.progress is not None
    assert done.progress["stage"] == "done" and done.progress["step"] == done.progress["total_steps"] == 40
    # Progress was recorded while training: the stage, steps and losses as they came.
    stages = [p["stage"] for p in seen]
    assert stages[0] == "preparing" and "sft" in stages
    steps = [p for p in seen if p["stage"] == "sft" and p.get("step")]
    assert steps and all(p["loss"] is not None and p["attempt"] == 1 for p in steps)
    # The evaluator got the trained model, its adapter stored, not deployed yet.
    [(given, stored)] = evaluated
    assert given.id == ft.id and stored.status == "TRAINING"
    assert (stored.progress or {})["stage"] == "evaluating"
    # The adapter: an artifact row and a directory carrying the training log and metrics.
    assert repo.artifact_sha(engine, ft.id, "adapter") is not None
    adapter = adapter_dir(settings.home_dir, ft.id)
    for name in ("adapter_config.json", "adapter_model.safetensors", "metrics.json", "training_log.jsonl"):
        assert (adapter / name).is_file(), name
    finished = job_row(engine, job.id)
    assert (finished.status, finished.attempts, finished.error_message) == (jobs.DONE, 1, None)
    assert not (settings.home_dir / "jobs" / f"{job.id}-1").exists()  # removed after success
    assert await worker.run_once() is False


@pytest.mark.slow
async def test_worker_deploys_even_when_evaluation_fails(
    sqlite_engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(sqlite_engine, tiny_model, epochs=1)

    async def evaluate(model: FineTune) -> dict[str, Any]:
        raise RuntimeError("the local engine is unavailable")

    assert await TrainingWorker(settings, sqlite_engine, evaluate=evaluate).run_once()
    done = fine_tune(sqlite_engine, ft.id)
    assert done.status == "DEPLOYED"
    assert (done.metrics or {})["test_set_error"] == "the local engine is unavailable"
    assert job_row(sqlite_engine, job.id).status == jobs.DONE


@pytest.mark.slow
async def test_worker_cancels_a_training_job(engine: Engine, tiny_model: Path, settings: Settings) -> None:
    ft, job = make_job(engine, tiny_model, epochs=LONG)
    worker = TrainingWorker(settings, engine)
    run = asyncio.create_task(worker.run_once())
    pid = await training_started(engine, worker, ft.id)
    assert fine_tune(engine, ft.id).status == "TRAINING"
    await asyncio.to_thread(jobs.request_cancel, engine, job.id)
    assert await asyncio.wait_for(run, 30) is True
    assert gone(pid)
    cancelled = fine_tune(engine, ft.id)
    assert (cancelled.status, cancelled.error_message) == ("ERROR", "cancelled")
    assert job_row(engine, job.id).status == jobs.CANCELLED
    assert repo.artifact_sha(engine, ft.id, "adapter") is None


@pytest.mark.slow
async def test_worker_retries_a_child_killed_by_a_signal(
    engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(engine, tiny_model, epochs=LONG, max_attempts=2)
    worker = TrainingWorker(settings, engine)
    run = asyncio.create_task(worker.run_once())
    pid = await training_started(engine, worker, ft.id)
    os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does
    assert await asyncio.wait_for(run, 30) is True

    queued = fine_tune(engine, ft.id)
    assert queued.status == "QUEUED" and queued.progress is not None
    assert queued.progress["retry"] == 2 and "signal 9 (SIGKILL)" in queued.progress["message"]
    requeued = job_row(engine, job.id)
    assert (requeued.status, requeued.attempts) == (jobs.QUEUED, 1)
    assert "SIGKILL" in (requeued.error_message or "")

    # Each attempt writes its job directory afresh from the fine-tune; a short one will do here.
    hyperparameters = {**ft.hyperparameters, "sft": {**ft.hyperparameters["sft"], "num_epochs": 1.0}}
    repo.update_fine_tune(engine, ft.id, hyperparameters=hyperparameters)
    assert await worker.run_once() is True
    done = fine_tune(engine, ft.id)
    assert done.status == "DEPLOYED" and (done.progress or {})["attempt"] == 2
    finished = job_row(engine, job.id)
    assert (finished.status, finished.attempts) == (jobs.DONE, 2)
    assert repo.artifact_sha(engine, ft.id, "adapter") is not None


@pytest.mark.slow
async def test_worker_fails_a_killed_child_without_attempts_left(
    engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(engine, tiny_model, epochs=LONG, max_attempts=1)
    worker = TrainingWorker(settings, engine)
    run = asyncio.create_task(worker.run_once())
    os.kill(await training_started(engine, worker, ft.id), signal.SIGKILL)
    assert await asyncio.wait_for(run, 30) is True
    failed = fine_tune(engine, ft.id)
    assert failed.status == "ERROR"
    assert "killed by signal 9 (SIGKILL)" in (failed.error_message or "")
    finished = job_row(engine, job.id)
    assert finished.status == jobs.ERROR and finished.error_message == failed.error_message
    assert (settings.home_dir / "jobs" / f"{job.id}-1" / "stderr.log").is_file()  # kept for debugging


@pytest.mark.slow
async def test_worker_recovers_a_job_whose_worker_died(
    engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(engine, tiny_model, epochs=1)
    assert jobs.claim(engine, "dead-host:1:abcd") is not None
    repo.update_fine_tune(engine, ft.id, status="TRAINING", progress={"stage": "sft", "step": 1})
    with engine.begin() as conn:  # its last heartbeat was long ago
        conn.execute(
            update(jobs_table).where(jobs_table.c.id == job.id).values(heartbeat_at=now_ms() - 3_600_000)
        )

    worker = TrainingWorker(settings, engine, worker_id="w-live")
    assert await worker.recover() == 1
    queued = fine_tune(engine, ft.id)
    assert queued.status == "QUEUED" and (queued.progress or {})["message"] == STALE_MESSAGE

    assert await worker.run_once() is True
    assert fine_tune(engine, ft.id).status == "DEPLOYED"
    finished = job_row(engine, job.id)
    assert (finished.status, finished.attempts, finished.worker_id) == (jobs.DONE, 2, "w-live")


@pytest.mark.slow
async def test_worker_close_hands_the_running_job_back(
    sqlite_engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(sqlite_engine, tiny_model, epochs=LONG)
    worker = TrainingWorker(settings, sqlite_engine)
    await worker.start()
    pid = await training_started(sqlite_engine, worker, ft.id)
    await worker.close()
    assert gone(pid)
    released = job_row(sqlite_engine, job.id)
    assert (released.status, released.attempts, released.error_message) == (
        jobs.QUEUED,
        0,
        "worker shut down",
    )
    queued = fine_tune(sqlite_engine, ft.id)
    assert queued.status == "QUEUED" and (queued.progress or {})["message"] == "worker shut down"


@pytest.mark.slow
async def test_worker_stops_when_the_fine_tune_is_deleted(
    sqlite_engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(sqlite_engine, tiny_model, epochs=LONG)
    worker = TrainingWorker(settings, sqlite_engine)
    run = asyncio.create_task(worker.run_once())
    pid = await training_started(sqlite_engine, worker, ft.id)
    repo.delete_fine_tune(sqlite_engine, ft.id)
    assert await asyncio.wait_for(run, 30) is True
    assert gone(pid)
    finished = job_row(sqlite_engine, job.id)
    assert (finished.status, finished.error_message) == (jobs.CANCELLED, "model deleted")


async def test_worker_fails_a_job_whose_base_model_is_missing(
    sqlite_engine: Engine, settings: Settings
) -> None:
    ft, job = make_job(sqlite_engine, None, root_model="org/not-installed")
    assert await TrainingWorker(settings, sqlite_engine).run_once() is True
    failed = fine_tune(sqlite_engine, ft.id)
    assert failed.status == "ERROR"
    assert failed.error_message == "the base model 'org/not-installed' is not registered on this installation"
    assert job_row(sqlite_engine, job.id).status == jobs.ERROR


@pytest.mark.slow
async def test_worker_fails_a_job_with_the_trainers_error(
    sqlite_engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(sqlite_engine, tiny_model, epochs=1, max_attempts=3)
    hyperparameters = {**ft.hyperparameters, "dpo": {**ft.hyperparameters["dpo"], "enabled": True}}
    repo.update_fine_tune(sqlite_engine, ft.id, hyperparameters=hyperparameters)
    assert await TrainingWorker(settings, sqlite_engine).run_once() is True
    failed = fine_tune(sqlite_engine, ft.id)
    assert failed.status == "ERROR"
    assert (
        failed.error_message == "DPO is enabled but no row has a rejected_message to prefer the output over"
    )
    finished = job_row(sqlite_engine, job.id)
    assert (finished.status, finished.attempts) == (jobs.ERROR, 1)  # an error event is not retried


def test_exit_message_names_the_signal_or_the_status_and_the_last_output(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.log"
    stderr.write_text("loading\rloading 100%\nTraceback (most recent call last):\nImportError: no torch\n")
    assert exit_message(-9, stderr) == "training process was killed by signal 9 (SIGKILL) — out of memory?"
    assert exit_message(-11, stderr) == "training process was killed by signal 11 (SIGSEGV)"
    assert exit_message(1, stderr) == (
        "training process exited with status 1: Traceback (most recent call last): | ImportError: no torch"
    )
    assert exit_message(2, tmp_path / "missing.log") == "training process exited with status 2"


async def test_worker_recovers_at_once_a_job_whose_process_on_this_host_is_gone(
    engine: Engine, tiny_model: Path, settings: Settings
) -> None:
    """A server restarted after a crash: its old job's heartbeat is fresh, but the process that
    held it no longer exists, so it is requeued without waiting for the stale timeout. A job of a
    live process on this host is left alone."""
    probe = subprocess.Popen(["true"])  # a pid that has just exited
    probe.wait()
    host = socket.gethostname()
    _, job = make_job(engine, tiny_model, epochs=1)
    assert jobs.claim(engine, f"{host}:{probe.pid}:dead") is not None
    live_job = jobs.enqueue(engine, "train", job.project_id, job.subject_id)
    assert jobs.claim(engine, f"{host}:{os.getpid()}:alive") is not None

    worker = TrainingWorker(settings, engine, worker_id="w-restarted")
    assert await worker.recover() == 1
    assert job_row(engine, job.id).status == jobs.QUEUED
    assert job_row(engine, live_job.id).status == jobs.RUNNING
