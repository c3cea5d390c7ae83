"""The job worker running train jobs against real SQLite and Postgres and the real training child
process, on a tiny locally built model: a job runs to DEPLOYED with its adapter stored; a
cancelled job stops its child; a child killed by SIGKILL is retried (or fails once attempts are
spent); a job whose worker died is recovered by another worker and completes; shutting down
hands the job back. The fine-tune's status follows its job throughout. The model is tiny, so a
run takes seconds."""

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
from sqlalchemy import Connection, update

from conftest import migrated_engine
from engine.tiny import build_tiny_model
from tunepipe.db import base_models, jobs
from tunepipe.db import fine_tunes as repo
from tunepipe.db.database import Database
from tunepipe.db.projects import create_project
from tunepipe.db.schema import jobs as jobs_table
from tunepipe.domain.clock import now_ms
from tunepipe.domain.fine_tunes import FineTune, resolve_hyperparameters
from tunepipe.domain.ids import uuid7
from tunepipe.domain.jobs import Job, JobStatus
from tunepipe.jobs.worker import Lane, Worker
from tunepipe.services.fine_tunes.files import adapter_dir
from tunepipe.services.fine_tunes.training import Evaluate, Trainer, exit_message
from tunepipe.services.jobs import queue
from tunepipe.settings import Settings

TRAIN_ROWS = 12
# A step of the tiny model takes a few milliseconds: 20 epochs (40 steps) last about a second,
# long enough to see progress; tests that stop a child mid-training train far longer.
LONG = 200


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database of its own per test (Postgres: a fresh schema, dropped after)."""
    for engine in migrated_engine(request.param, tmp_path):
        yield Database(engine)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    for engine in migrated_engine("sqlite", tmp_path):
        yield Database(engine)


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
    db: Database,
    model_dir: Path | None,
    *,
    epochs: float = 20,
    max_attempts: int = 2,
    root_model: str = "tiny",
) -> tuple[FineTune, Job]:
    """A QUEUED fine-tune of ``tiny`` (registered at ``model_dir``) with its rows and its job."""

    def make(conn: Connection) -> tuple[FineTune, Job]:
        project = create_project(conn, f"p-{uuid.uuid4().hex[:8]}").id
        if model_dir is not None:
            base_models.add(conn, name="tiny", source=str(model_dir), path=str(model_dir), kind="dir")
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
            status="PENDING",
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
            metrics=None,
            train_rows=TRAIN_ROWS,
            test_rows=2,
            created_at=now,
            updated_at=now,
            training_started_at=None,
            training_finished_at=None,
        )
        repo.create(conn, ft)
        rows = [(f"e{i:03d}", "TRAIN" if i < TRAIN_ROWS else "TEST", _row(i)) for i in range(TRAIN_ROWS + 2)]
        repo.add_entries(conn, ft.id, rows)
        return ft, queue.enqueue(conn, "train", project, ft.id, max_attempts=max_attempts)

    return db.run_sync(make)


def train_worker(
    settings: Settings, db: Database, *, evaluate: Evaluate | None = None, worker_id: str | None = None
) -> Worker:
    """A worker that runs train jobs only, as ``tunepipe worker --kind train`` does."""
    trainer = Trainer(settings, db, evaluate=evaluate)
    return Worker(settings, db, {"train": trainer}, [Lane("training", ("train",), 1)], worker_id=worker_id)


def _row(i: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": f"where is the {['cat', 'dog', 'car'][i % 3]} {i}"}],
        "output": {"role": "assistant", "content": "the cat sat on a mat"},
        "rejected_message": None,
        "tools": None,
        "tool_choice": None,
        "response_format": None,
    }


def fine_tune(db: Database, ft_id: str) -> FineTune:
    got = db.run_sync(repo.get_by_id, ft_id)
    assert got is not None
    return got


def job_row(db: Database, job_id: str) -> Job:
    got = db.run_sync(jobs.get, job_id)
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


async def training_started(db: Database, worker: Worker, job_id: str) -> int:
    """Wait until the child has loaded the model and trains (a progress event arrived); its pid."""

    def pid() -> int | None:
        ctx = worker.running.get(job_id)
        return ctx.child_pid if ctx is not None else None

    async def check() -> bool:
        progress = (await asyncio.to_thread(job_row, db, job_id)).progress
        return pid() is not None and progress.get("stage") == "sft"

    await eventually(check)
    child = pid()
    assert child is not None
    return child


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
async def test_worker_trains_a_fine_tune_to_deployed(
    db: Database, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(db, tiny_model)
    assert fine_tune(db, ft.id).status == "QUEUED"  # it follows its job from the start
    evaluated: list[tuple[FineTune, FineTune, Job]] = []

    async def evaluate(model: FineTune) -> dict[str, Any]:
        now = await asyncio.to_thread(fine_tune, db, model.id)
        evaluated.append((model, now, await asyncio.to_thread(job_row, db, job.id)))
        return {"test_exact_match": 0.5}

    worker = train_worker(settings, db, evaluate=evaluate, worker_id="w-test")
    seen: list[dict[str, Any]] = []
    run = asyncio.create_task(worker.run_once())
    while not run.done():
        progress = (await asyncio.to_thread(job_row, db, job.id)).progress
        if progress and progress not in seen:
            seen.append(progress)
        await asyncio.sleep(0.05)
    assert run.result() is True

    done = fine_tune(db, ft.id)
    assert done.status == "DEPLOYED" and done.error_message is None
    assert done.training_started_at is not None and done.training_finished_at is not None
    metrics = done.metrics or {}
    assert metrics["train_rows"] == TRAIN_ROWS and metrics["sft_steps"] == 40
    assert metrics["sft_final_loss"] < metrics["sft_first_loss"]
    assert metrics["test_exact_match"] == 0.5
    finished = job_row(db, job.id)
    assert (finished.status, finished.attempts, finished.error_message) == (JobStatus.DONE, 1, None)
    assert finished.result == metrics  # the model's metrics are its job's result
    assert (
        finished.progress["stage"] == "done"
        and finished.progress["step"] == finished.progress["total_steps"] == 40
    )
    # Progress was recorded while training: the stage, steps and losses as they came.
    stages = [p["stage"] for p in seen]
    assert stages[0] in ("queued", "preparing") and "sft" in stages
    steps = [p for p in seen if p["stage"] == "sft" and p.get("step")]
    assert steps and all(p["loss"] is not None and p["attempt"] == 1 for p in steps)
    # The evaluator got the trained model, its adapter stored, not deployed yet.
    [(given, stored, during)] = evaluated
    assert given.id == ft.id and stored.status == "TRAINING"
    assert during.progress["stage"] == "evaluating"
    # The adapter: an artifact row and a directory carrying the training log and metrics.
    assert db.run_sync(repo.artifact_sha, ft.id, "adapter") is not None
    adapter = adapter_dir(settings.home_dir, ft.id)
    for name in ("adapter_config.json", "adapter_model.safetensors", "metrics.json", "training_log.jsonl"):
        assert (adapter / name).is_file(), name
    assert not (settings.home_dir / "jobs" / f"{job.id}-1").exists()  # removed after success
    assert await worker.run_once() is False


@pytest.mark.slow
async def test_worker_deploys_even_when_evaluation_fails(
    sqlite_db: Database, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(sqlite_db, tiny_model, epochs=1)

    async def evaluate(model: FineTune) -> dict[str, Any]:
        raise RuntimeError("the local engine is unavailable")

    assert await train_worker(settings, sqlite_db, evaluate=evaluate).run_once()
    done = fine_tune(sqlite_db, ft.id)
    assert done.status == "DEPLOYED"
    assert (done.metrics or {})["test_set_error"] == "the local engine is unavailable"
    assert job_row(sqlite_db, job.id).status is JobStatus.DONE


@pytest.mark.slow
async def test_worker_cancels_a_training_job(db: Database, tiny_model: Path, settings: Settings) -> None:
    ft, job = make_job(db, tiny_model, epochs=LONG)
    worker = train_worker(settings, db)
    run = asyncio.create_task(worker.run_once())
    pid = await training_started(db, worker, job.id)
    assert fine_tune(db, ft.id).status == "TRAINING"
    await asyncio.to_thread(lambda: db.run_sync(queue.cancel, job_row(db, job.id)))
    assert await asyncio.wait_for(run, 30) is True
    assert gone(pid)
    cancelled = fine_tune(db, ft.id)
    assert (cancelled.status, cancelled.error_message) == ("ERROR", "cancelled")
    assert job_row(db, job.id).status is JobStatus.CANCELLED
    assert db.run_sync(repo.artifact_sha, ft.id, "adapter") is None


@pytest.mark.slow
async def test_worker_retries_a_child_killed_by_a_signal(
    db: Database, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(db, tiny_model, epochs=LONG, max_attempts=2)
    worker = train_worker(settings, db)
    run = asyncio.create_task(worker.run_once())
    pid = await training_started(db, worker, job.id)
    os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does
    assert await asyncio.wait_for(run, 30) is True

    assert fine_tune(db, ft.id).status == "QUEUED"
    requeued = job_row(db, job.id)
    assert (requeued.status, requeued.attempts) == (JobStatus.QUEUED, 1)
    assert "SIGKILL" in (requeued.error_message or "")
    assert requeued.progress["retry"] == 2 and "signal 9 (SIGKILL)" in requeued.progress["message"]

    # Each attempt writes its job directory afresh from the fine-tune; a short one will do here.
    hyperparameters = {**ft.hyperparameters, "sft": {**ft.hyperparameters["sft"], "num_epochs": 1.0}}
    db.run_sync(repo.update_fine_tune, ft.id, hyperparameters=hyperparameters)
    assert await worker.run_once() is True
    assert fine_tune(db, ft.id).status == "DEPLOYED"
    finished = job_row(db, job.id)
    assert (finished.status, finished.attempts, finished.progress["attempt"]) == (JobStatus.DONE, 2, 2)
    assert db.run_sync(repo.artifact_sha, ft.id, "adapter") is not None


@pytest.mark.slow
async def test_worker_fails_a_killed_child_without_attempts_left(
    db: Database, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(db, tiny_model, epochs=LONG, max_attempts=1)
    worker = train_worker(settings, db)
    run = asyncio.create_task(worker.run_once())
    os.kill(await training_started(db, worker, job.id), signal.SIGKILL)
    assert await asyncio.wait_for(run, 30) is True
    failed = fine_tune(db, ft.id)
    assert failed.status == "ERROR"
    assert "killed by signal 9 (SIGKILL)" in (failed.error_message or "")
    finished = job_row(db, job.id)
    assert finished.status is JobStatus.ERROR and finished.error_message == failed.error_message
    assert (settings.home_dir / "jobs" / f"{job.id}-1" / "stderr.log").is_file()  # kept for debugging


@pytest.mark.slow
async def test_worker_recovers_a_job_whose_worker_died(
    db: Database, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(db, tiny_model, epochs=1)
    assert db.run_sync(queue.claim, "dead-host:1:abcd", ("train",)) is not None
    assert fine_tune(db, ft.id).status == "TRAINING"
    with db.engine.begin() as conn:  # its last heartbeat was long ago
        conn.execute(
            update(jobs_table).where(jobs_table.c.id == job.id).values(heartbeat_at=now_ms() - 3_600_000)
        )

    worker = train_worker(settings, db, worker_id="w-live")
    assert len(await worker.recover()) == 1
    assert fine_tune(db, ft.id).status == "QUEUED"
    assert job_row(db, job.id).progress["message"] == queue.STALE_MESSAGE

    assert await worker.run_once() is True
    assert fine_tune(db, ft.id).status == "DEPLOYED"
    finished = job_row(db, job.id)
    assert (finished.status, finished.attempts, finished.worker_id) == (JobStatus.DONE, 2, "w-live")


@pytest.mark.slow
async def test_worker_close_hands_the_running_job_back(
    sqlite_db: Database, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(sqlite_db, tiny_model, epochs=LONG)
    worker = train_worker(settings, sqlite_db)
    await worker.start()
    pid = await training_started(sqlite_db, worker, job.id)
    await worker.close()
    assert gone(pid)
    released = job_row(sqlite_db, job.id)
    assert (released.status, released.attempts, released.error_message) == (
        JobStatus.QUEUED,
        0,
        "worker shut down",
    )
    assert released.progress["message"] == "worker shut down"
    assert fine_tune(sqlite_db, ft.id).status == "QUEUED"


@pytest.mark.slow
async def test_worker_stops_when_the_fine_tune_is_deleted(
    sqlite_db: Database, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(sqlite_db, tiny_model, epochs=LONG)
    worker = train_worker(settings, sqlite_db)
    run = asyncio.create_task(worker.run_once())
    pid = await training_started(sqlite_db, worker, job.id)

    def delete(conn: Connection) -> None:  # what deleting the model does
        queue.cancel_for_subject(conn, ft.id)
        repo.delete_fine_tune(conn, ft.id)

    await sqlite_db.run(delete)
    assert await asyncio.wait_for(run, 30) is True
    assert gone(pid)
    finished = job_row(sqlite_db, job.id)
    assert (finished.status, finished.error_message) == (JobStatus.CANCELLED, "cancelled")


async def test_worker_fails_a_job_whose_base_model_is_missing(
    sqlite_db: Database, settings: Settings
) -> None:
    ft, job = make_job(sqlite_db, None, root_model="org/not-installed")
    assert await train_worker(settings, sqlite_db).run_once() is True
    failed = fine_tune(sqlite_db, ft.id)
    assert failed.status == "ERROR"
    assert failed.error_message == "the base model 'org/not-installed' is not registered on this installation"
    assert job_row(sqlite_db, job.id).status is JobStatus.ERROR


@pytest.mark.slow
async def test_worker_fails_a_job_with_the_trainers_error(
    sqlite_db: Database, tiny_model: Path, settings: Settings
) -> None:
    ft, job = make_job(sqlite_db, tiny_model, epochs=1, max_attempts=3)
    hyperparameters = {**ft.hyperparameters, "dpo": {**ft.hyperparameters["dpo"], "enabled": True}}
    sqlite_db.run_sync(repo.update_fine_tune, ft.id, hyperparameters=hyperparameters)
    assert await train_worker(settings, sqlite_db).run_once() is True
    failed = fine_tune(sqlite_db, ft.id)
    assert failed.status == "ERROR"
    assert (
        failed.error_message == "DPO is enabled but no row has a rejected_message to prefer the output over"
    )
    finished = job_row(sqlite_db, job.id)
    assert (finished.status, finished.attempts) == (JobStatus.ERROR, 1)  # an error event is not retried


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
    db: Database, tiny_model: Path, settings: Settings
) -> None:
    """A server restarted after a crash: its old job's heartbeat is fresh, but the process that
    held it no longer exists, so it is requeued without waiting for the stale timeout. A job of a
    live process on this host is left alone."""
    probe = subprocess.Popen(["true"])  # a pid that has just exited
    probe.wait()
    host = socket.gethostname()
    _, job = make_job(db, tiny_model, epochs=1)
    assert db.run_sync(queue.claim, f"{host}:{probe.pid}:dead", ("train",)) is not None
    live_job = db.run_sync(queue.enqueue, "train", job.project_id, job.subject_id)
    assert db.run_sync(queue.claim, f"{host}:{os.getpid()}:alive", ("train",)) is not None

    worker = train_worker(settings, db, worker_id="w-restarted")
    assert len(await worker.recover()) == 1
    assert job_row(db, job.id).status is JobStatus.QUEUED
    assert job_row(db, live_job.id).status is JobStatus.RUNNING
