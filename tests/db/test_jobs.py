"""The jobs repository on SQLite and Postgres: a job is claimed by exactly one worker however
many race for it, a stale job is recovered (retried, then failed), and a recovered job is no
longer its old worker's to beat or finish."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from conftest import migrated_engine
from tunepipe.db import jobs
from tunepipe.db.projects import create_project
from tunepipe.db.schema import jobs as jobs_table
from tunepipe.domain.clock import now_ms


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database of its own per test (Postgres: a fresh schema, dropped after)."""
    yield from migrated_engine(request.param, tmp_path)


@pytest.fixture
def project(engine: Engine) -> str:
    return create_project(engine, "alpha").id


def age(engine: Engine, job_id: str, by_ms: int = 3_600_000) -> None:
    """Make a running job's last heartbeat ``by_ms`` old, as if its worker had died."""
    with engine.begin() as conn:
        conn.execute(
            update(jobs_table).where(jobs_table.c.id == job_id).values(heartbeat_at=now_ms() - by_ms)
        )


def test_claim_is_exclusive_under_concurrency(engine: Engine, project: str) -> None:
    threads, per_thread = 8, 20
    queued = {jobs.enqueue(engine, "train", project, f"ft-{i}").id for i in range(threads * per_thread)}
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        try:
            start.wait()
            while True:
                job = jobs.claim(engine, worker)
                if job is None:
                    # Every candidate this claimer saw was taken by others; stop once none is left.
                    if not any(j.status == jobs.QUEUED for j in _all(engine, queued)):
                        return
                    continue
                assert job.worker_id == worker and job.status == jobs.RUNNING and job.attempts == 1
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
    assert all(j.worker_id == owner[j.id] and j.attempts == 1 for j in _all(engine, queued))


def _all(engine: Engine, ids: set[str]) -> list[jobs.Job]:
    return [j for j in (jobs.get(engine, i) for i in ids) if j is not None]


def test_claim_takes_the_oldest_queued_job_of_the_kind(engine: Engine, project: str) -> None:
    other = jobs.enqueue(engine, "export", project, "x")
    first = jobs.enqueue(engine, "train", project, "a")
    time.sleep(0.005)  # order is by created_at (ms); ids within one millisecond are random
    jobs.enqueue(engine, "train", project, "b")
    got = jobs.claim(engine, "w1")
    assert got is not None and got.id == first.id
    assert jobs.get(engine, other.id).status == jobs.QUEUED  # type: ignore[union-attr]


def test_heartbeat_is_refused_after_recovery(engine: Engine, project: str) -> None:
    job = jobs.enqueue(engine, "train", project, "ft")
    assert jobs.claim(engine, "w1") is not None
    assert jobs.heartbeat(engine, job.id, "w1")
    assert not jobs.heartbeat(engine, job.id, "w2")  # not w2's job
    age(engine, job.id)
    recovered = jobs.recover_stale(engine, 60_000, "worker died")
    assert [(j.id, j.status, j.worker_id) for j in recovered] == [(job.id, jobs.QUEUED, None)]
    assert not jobs.heartbeat(engine, job.id, "w1")
    assert not jobs.finish(engine, job.id, "w1", jobs.DONE)
    assert not jobs.requeue(engine, job.id, "w1", "again")
    assert jobs.get(engine, job.id).status == jobs.QUEUED  # type: ignore[union-attr]


def test_recover_stale_leaves_beating_jobs_alone(engine: Engine, project: str) -> None:
    job = jobs.enqueue(engine, "train", project, "ft")
    jobs.claim(engine, "w1")
    assert jobs.recover_stale(engine, 60_000, "worker died") == []
    assert jobs.get(engine, job.id).status == jobs.RUNNING  # type: ignore[union-attr]


def test_recover_stale_requeues_then_fails_after_max_attempts(engine: Engine, project: str) -> None:
    job = jobs.enqueue(engine, "train", project, "ft", max_attempts=2)
    for attempt in (1, 2):
        claimed = jobs.claim(engine, f"w{attempt}")
        assert claimed is not None and claimed.attempts == attempt
        age(engine, job.id)
        [recovered] = jobs.recover_stale(engine, 60_000, "the worker stopped")
        assert recovered.error_message == "the worker stopped"
        if attempt == 1:
            assert recovered.status == jobs.QUEUED and recovered.finished_at is None
        else:
            assert recovered.status == jobs.ERROR and recovered.finished_at is not None
    assert jobs.claim(engine, "w3") is None


def test_recover_stale_fails_a_job_whose_cancel_was_requested(engine: Engine, project: str) -> None:
    job = jobs.enqueue(engine, "train", project, "ft", max_attempts=3)
    jobs.claim(engine, "w1")
    jobs.request_cancel(engine, job.id)
    age(engine, job.id)
    [recovered] = jobs.recover_stale(engine, 60_000, "gone")
    assert recovered.status == jobs.ERROR and recovered.cancel_requested


def test_cancel_of_a_queued_job_is_immediate(engine: Engine, project: str) -> None:
    job = jobs.enqueue(engine, "train", project, "ft")
    jobs.request_cancel(engine, job.id)
    got = jobs.get(engine, job.id)
    assert got is not None and got.status == jobs.CANCELLED and got.finished_at is not None
    assert jobs.cancel_requested(engine, job.id)
    assert jobs.claim(engine, "w1") is None


def test_cancel_of_a_running_job_is_left_to_its_worker(engine: Engine, project: str) -> None:
    job = jobs.enqueue(engine, "train", project, "ft")
    jobs.claim(engine, "w1")
    assert not jobs.cancel_requested(engine, job.id)
    jobs.request_cancel(engine, job.id)
    assert jobs.cancel_requested(engine, job.id)
    assert jobs.get(engine, job.id).status == jobs.RUNNING  # type: ignore[union-attr]
    assert jobs.finish(engine, job.id, "w1", jobs.CANCELLED, "cancelled")
    got = jobs.get(engine, job.id)
    assert got is not None and got.status == jobs.CANCELLED and got.error_message == "cancelled"


def test_release_hands_a_job_back_without_spending_its_attempt(engine: Engine, project: str) -> None:
    job = jobs.enqueue(engine, "train", project, "ft", max_attempts=1)
    jobs.claim(engine, "w1")
    assert not jobs.release(engine, job.id, "w2", "not mine")
    assert jobs.release(engine, job.id, "w1", "worker shut down")
    got = jobs.get(engine, job.id)
    assert got is not None
    assert (got.status, got.attempts, got.worker_id, got.error_message) == (
        jobs.QUEUED,
        0,
        None,
        "worker shut down",
    )
    again = jobs.claim(engine, "w2")
    assert again is not None and again.attempts == 1
