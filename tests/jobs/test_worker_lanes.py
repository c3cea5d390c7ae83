"""The worker's own rules, with simple handlers on a real database: training and dataset jobs
run in separate lanes (an import is not held up by a long training), a handler's exception
fails only its job, and a cancel reaches a running handler through its context."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import migrated_engine
from tunepipe.db import jobs
from tunepipe.db.database import Database
from tunepipe.db.projects import create_project
from tunepipe.domain.jobs import Job, JobStatus
from tunepipe.jobs.worker import Lane, Worker
from tunepipe.services.jobs import queue
from tunepipe.services.jobs.context import JobContext
from tunepipe.settings import Settings

LANES = [Lane("training", ("train",), 1), Lane("datasets", ("import_logs", "relabel"), 2)]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    for engine in migrated_engine("sqlite", tmp_path):
        yield Database(engine)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", worker_poll_s=0.05, job_heartbeat_s=0.05, default_model=False)


def enqueue(db: Database, kind: str) -> Job:
    project = db.run_sync(create_project, f"p-{time.monotonic_ns()}").id
    return db.run_sync(queue.enqueue, kind, project, "subject")


def status(db: Database, job: Job) -> JobStatus:
    got = db.run_sync(jobs.get, job.id)
    assert got is not None
    return got.status


async def until(check: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_long_training_does_not_hold_up_a_dataset_job(db: Database, settings: Settings) -> None:
    release = asyncio.Event()

    async def train(ctx: JobContext) -> dict[str, Any]:
        await ctx.report(stage="sft", step=1)
        await release.wait()
        return {"trained": True}

    async def import_logs(ctx: JobContext) -> dict[str, Any]:
        await ctx.report(stage="importing", done=3)
        return {"created": 3}

    worker = Worker(settings, db, {"train": train, "import_logs": import_logs}, LANES)
    training = enqueue(db, "train")
    await worker.start()
    try:
        await until(lambda: status(db, training) is JobStatus.RUNNING)
        importing = enqueue(db, "import_logs")
        worker.wake()
        await until(lambda: status(db, importing) is JobStatus.DONE)
        assert status(db, training) is JobStatus.RUNNING  # still training meanwhile
        release.set()
        await until(lambda: status(db, training) is JobStatus.DONE)
    finally:
        await worker.close()
    done = db.run_sync(jobs.get, training.id)
    assert done is not None and done.result == {"trained": True} and done.progress["stage"] == "done"


async def test_an_exception_fails_its_job_and_the_worker_goes_on(db: Database, settings: Settings) -> None:
    async def broken(ctx: JobContext) -> dict[str, Any]:
        raise RuntimeError("a bug")

    async def fine(ctx: JobContext) -> dict[str, Any]:
        return {}

    worker = Worker(settings, db, {"import_logs": broken, "relabel": fine}, LANES)
    bad, good = enqueue(db, "import_logs"), enqueue(db, "relabel")
    assert await worker.run_once() and await worker.run_once()
    failed = db.run_sync(jobs.get, bad.id)
    assert failed is not None and failed.status is JobStatus.ERROR
    assert failed.error_message == "internal error: a bug"
    assert status(db, good) is JobStatus.DONE


async def test_a_cancel_stops_a_running_handler_at_its_next_checkpoint(
    db: Database, settings: Settings
) -> None:
    batches: list[int] = []

    async def import_logs(ctx: JobContext) -> dict[str, Any]:
        for n in range(10_000):
            ctx.checkpoint()
            batches.append(n)
            await ctx.report(done=n)
            await asyncio.sleep(0.01)
        return {}

    worker = Worker(settings, db, {"import_logs": import_logs}, LANES)
    job = enqueue(db, "import_logs")
    run = asyncio.create_task(worker.run_once())
    await until(lambda: len(batches) > 3)
    await asyncio.to_thread(lambda: db.run_sync(queue.cancel, db.run_sync(jobs.get, job.id)))
    assert await asyncio.wait_for(run, 10)
    cancelled = db.run_sync(jobs.get, job.id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert cancelled.progress["stage"] == "cancelled" and cancelled.progress["done"] == batches[-1]
    assert len(batches) < 10_000
