"""The job queue on SQLite and Postgres: a job is claimed by exactly one worker however many
race for it, a stale job is recovered (retried, then failed), a recovered job is no longer its
old worker's to beat or settle, and cancels are immediate for queued jobs and left to the
worker for running ones."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update

from conftest import migrated_engine
from tunepipe.db import jobs
from tunepipe.db.database import Database
from tunepipe.db.projects import create_project
from tunepipe.db.schema import jobs as jobs_table
from tunepipe.domain.clock import now_ms
from tunepipe.domain.jobs import IllegalTransition, Job, JobEvent, JobStatus
from tunepipe.services.jobs import queue

TRAIN = ("train",)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database of its own per test (Postgres: a fresh schema, dropped after)."""
    for engine in migrated_engine(request.param, tmp_path):
        yield Database(engine)


@pytest.fixture
def project(db: Database) -> str:
    return db.run_sync(create_project, "alpha").id


def enqueue(db: Database, project: str, subject: str, kind: str = "train", **kw: Any) -> Job:
    return db.run_sync(queue.enqueue, kind, project, subject, **kw)


def claim(db: Database, worker: str, kinds: tuple[str, ...] = TRAIN) -> Job | None:
    return db.run_sync(queue.claim, worker, kinds)


def get(db: Database, job_id: str) -> Job:
    job = db.run_sync(jobs.get, job_id)
    assert job is not None
    return job


def settle(db: Database, job: Job, event: JobEvent, worker: str, **kw: Any) -> Job | None:
    return db.run_sync(queue.transition, get(db, job.id), event, worker_id=worker, **kw)


def age(engine: Engine, job_id: str, by_ms: int = 3_600_000) -> None:
    """Make a running job's last heartbeat ``by_ms`` old, as if its worker had died."""
    with engine.begin() as conn:
        conn.execute(
            update(jobs_table).where(jobs_table.c.id == job_id).values(heartbeat_at=now_ms() - by_ms)
        )


def recover(db: Database) -> list[Job]:
    return db.run_sync(queue.recover_stale, 60_000, now_ms())


def test_claim_is_exclusive_under_concurrency(db: Database, project: str) -> None:
    threads, per_thread = 8, 20
    queued = {enqueue(db, project, f"ft-{i}").id for i in range(threads * per_thread)}
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        try:
            start.wait()
            while True:
                job = claim(db, worker)
                if job is None:
                    # Every candidate this claimer saw was taken by others; stop once none is left.
                    if not any(get(db, i).status is JobStatus.QUEUED for i in queued):
                        return
                    continue
                assert job.worker_id == worker and job.status is JobStatus.RUNNING and job.attempts == 1
                with lock:
                    claimed.append((job.id, worker))
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not errors, errors
    counts = Counter(job_id for job_id, _ in claimed)
    assert set(counts) == queued
    assert max(counts.values()) == 1
    assert len({worker for _, worker in claimed}) > 1  # they really raced
    # Each job's row names the worker that claimed it.
    owner = dict(claimed)
    assert all(get(db, i).worker_id == owner[i] and get(db, i).attempts == 1 for i in queued)


def test_claim_takes_the_oldest_queued_job_of_the_kinds_asked(db: Database, project: str) -> None:
    other = enqueue(db, project, "d", kind="relabel")
    first = enqueue(db, project, "a")
    time.sleep(0.005)
    enqueue(db, project, "b")
    got = claim(db, "w1")
    assert got is not None and got.id == first.id
    assert got.progress == {"stage": "preparing", "attempt": 1}
    assert get(db, other.id).status is JobStatus.QUEUED
    relabel = claim(db, "w2", ("import_logs", "relabel"))
    assert relabel is not None and relabel.id == other.id


def test_heartbeat_and_progress_are_refused_after_recovery(db: Database, project: str) -> None:
    job = enqueue(db, project, "ft")
    assert claim(db, "w1") is not None
    assert db.run_sync(jobs.heartbeat, job.id, "w1")
    assert db.run_sync(jobs.set_progress, job.id, "w1", {"stage": "sft", "step": 3})
    assert get(db, job.id).progress == {"stage": "sft", "step": 3}
    assert not db.run_sync(jobs.heartbeat, job.id, "w2")  # not w2's job
    age(db.engine, job.id)
    recovered = recover(db)
    assert [(j.id, j.status, j.worker_id) for j in recovered] == [(job.id, JobStatus.QUEUED, None)]
    assert recovered[0].progress["message"] == queue.STALE_MESSAGE and recovered[0].progress["retry"] == 2
    assert not db.run_sync(jobs.heartbeat, job.id, "w1")
    assert not db.run_sync(jobs.set_progress, job.id, "w1", {"stage": "late"})


def test_a_settled_event_of_the_old_worker_does_not_apply(db: Database, project: str) -> None:
    job = enqueue(db, project, "ft")
    mine = claim(db, "w1")
    assert mine is not None
    age(db.engine, job.id)
    recover(db)
    assert db.run_sync(queue.transition, mine, JobEvent.SUCCEEDED, worker_id="w1") is None
    assert db.run_sync(queue.transition, mine, JobEvent.RELEASED, worker_id="w1") is None
    assert get(db, job.id).status is JobStatus.QUEUED


def test_recover_stale_leaves_beating_jobs_alone(db: Database, project: str) -> None:
    job = enqueue(db, project, "ft")
    claim(db, "w1")
    assert recover(db) == []
    assert get(db, job.id).status is JobStatus.RUNNING


def test_recover_stale_requeues_then_fails_after_max_attempts(db: Database, project: str) -> None:
    job = enqueue(db, project, "ft", max_attempts=2)
    for attempt in (1, 2):
        claimed = claim(db, f"w{attempt}")
        assert claimed is not None and claimed.attempts == attempt
        age(db.engine, job.id)
        [recovered] = recover(db)
        assert recovered.error_message == queue.STALE_MESSAGE
        if attempt == 1:
            assert recovered.status is JobStatus.QUEUED and recovered.finished_at is None
        else:
            assert recovered.status is JobStatus.ERROR and recovered.finished_at is not None
    assert claim(db, "w3") is None


def test_recover_stale_cancels_a_job_whose_cancel_was_requested(db: Database, project: str) -> None:
    job = enqueue(db, project, "ft", max_attempts=3)
    running = claim(db, "w1")
    assert running is not None
    db.run_sync(queue.cancel, running)
    age(db.engine, job.id)
    [recovered] = recover(db)
    assert recovered.status is JobStatus.CANCELLED and recovered.cancel_requested
    assert recovered.error_message == "cancelled"


def test_cancel_of_a_queued_job_is_immediate(db: Database, project: str) -> None:
    job = enqueue(db, project, "ft")
    got = db.run_sync(queue.cancel, job)
    assert got.status is JobStatus.CANCELLED and got.finished_at is not None
    assert got.error_message == "cancelled" and got.progress["stage"] == "cancelled"
    assert db.run_sync(jobs.cancel_requested, job.id)
    assert claim(db, "w1") is None
    assert db.run_sync(queue.cancel, got) == got  # a finished job stays as it is


def test_cancel_of_a_running_job_is_left_to_its_worker(db: Database, project: str) -> None:
    job = enqueue(db, project, "ft")
    claim(db, "w1")
    assert not db.run_sync(jobs.cancel_requested, job.id)
    flagged = db.run_sync(queue.cancel, get(db, job.id))
    assert flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    assert db.run_sync(jobs.cancel_requested, job.id)
    done = settle(db, job, JobEvent.CANCELLED, "w1")
    assert done is not None and done.status is JobStatus.CANCELLED and done.error_message == "cancelled"


def test_release_hands_a_job_back_without_spending_its_attempt(db: Database, project: str) -> None:
    job = enqueue(db, project, "ft", max_attempts=1)
    claim(db, "w1")
    assert settle(db, job, JobEvent.RELEASED, "w2", message="not mine") is None
    got = settle(db, job, JobEvent.RELEASED, "w1", message="worker shut down")
    assert got is not None
    assert (got.status, got.attempts, got.worker_id, got.error_message) == (
        JobStatus.QUEUED,
        0,
        None,
        "worker shut down",
    )
    again = claim(db, "w2")
    assert again is not None and again.attempts == 1


def test_success_records_the_result_and_the_last_progress(db: Database, project: str) -> None:
    job = enqueue(db, project, "d", kind="import_logs", params={"dedupe": True})
    claim(db, "w1", ("import_logs",))
    done = settle(
        db, job, JobEvent.SUCCEEDED, "w1", progress={"stage": "importing", "done": 4}, result={"created": 4}
    )
    assert done is not None and done.status is JobStatus.DONE
    assert (done.result, done.progress, done.params) == (
        {"created": 4},
        {"stage": "done", "done": 4},
        {"dedupe": True},
    )
    with pytest.raises(IllegalTransition):
        db.run_sync(queue.transition, done, JobEvent.CLAIMED, worker_id="w2")
