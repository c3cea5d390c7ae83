"""Persisted jobs for worker processes: enqueue, claim, heartbeat, cancel, finish, recover.

Claiming is one conditional ``UPDATE … WHERE id = :id AND status = 'QUEUED'``: on SQLite writes
are serialised and on Postgres the second claimer's UPDATE re-checks the row after the first
commits and matches nothing, so exactly one worker gets each job without explicit locks.

A running job's worker beats ``heartbeat_at``. :func:`recover_stale` (any worker calls it
between claims) hands back jobs whose heartbeat is older than the staleness limit: to QUEUED
while attempts remain, else ERROR with a message — so a job never stays RUNNING after its
worker died.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from tunepipe.db.schema import jobs
from tunepipe.domain.clock import now_ms
from tunepipe.domain.ids import uuid7

QUEUED, RUNNING, DONE, ERROR, CANCELLED = "QUEUED", "RUNNING", "DONE", "ERROR", "CANCELLED"
UNFINISHED = (QUEUED, RUNNING)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    project_id: str
    subject_id: str
    status: str
    attempts: int
    max_attempts: int
    worker_id: str | None
    heartbeat_at: int | None
    cancel_requested: bool
    error_message: str | None
    created_at: int
    updated_at: int
    started_at: int | None
    finished_at: int | None


def _job(row: Any) -> Job:
    return Job(**dict(row._mapping))


def enqueue(engine: Engine, kind: str, project_id: str, subject_id: str, *, max_attempts: int = 2) -> Job:
    now = now_ms()
    job = Job(
        id=uuid7(),
        kind=kind,
        project_id=project_id,
        subject_id=subject_id,
        status=QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        worker_id=None,
        heartbeat_at=None,
        cancel_requested=False,
        error_message=None,
        created_at=now,
        updated_at=now,
        started_at=None,
        finished_at=None,
    )
    with engine.begin() as conn:
        conn.execute(insert(jobs).values(**{f: getattr(job, f) for f in Job.__dataclass_fields__}))
    return job


def get(engine: Engine, job_id: str) -> Job | None:
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    return _job(row) if row else None


def for_subject(engine: Engine, subject_id: str) -> list[Job]:
    """Every job of one subject, oldest first."""
    c = jobs.c
    with engine.connect() as conn:
        rows = conn.execute(select(jobs).where(c.subject_id == subject_id).order_by(c.created_at, c.id))
        return [_job(r) for r in rows]


def claim(
    engine: Engine, worker_id: str, kinds: tuple[str, ...] = ("train",), *, scan: int = 10
) -> Job | None:
    """Take the oldest QUEUED job of ``kinds`` for ``worker_id``, or None if there is none."""
    c = jobs.c
    with engine.connect() as conn:
        candidates = list(
            conn.execute(
                select(c.id)
                .where(c.status == QUEUED, c.kind.in_(kinds), c.cancel_requested.is_(False))
                .order_by(c.created_at, c.id)
                .limit(scan)
            ).scalars()
        )
    for job_id in candidates:
        now = now_ms()
        with engine.begin() as conn:
            won = conn.execute(
                update(jobs)
                .where(c.id == job_id, c.status == QUEUED)
                .values(
                    status=RUNNING,
                    worker_id=worker_id,
                    heartbeat_at=now,
                    attempts=c.attempts + 1,
                    started_at=now,
                    updated_at=now,
                )
            ).rowcount
        if won:
            return get(engine, job_id)
    return None


def _update_held(engine: Engine, job_id: str, holder: str, /, **values: Any) -> bool:
    """Update a job only while ``holder`` holds it (RUNNING, claimed by it); False when it
    was taken away meanwhile (recovered by another worker, or finished)."""
    c = jobs.c
    with engine.begin() as conn:
        held = conn.execute(
            update(jobs)
            .where(c.id == job_id, c.worker_id == holder, c.status == RUNNING)
            .values(**values, updated_at=now_ms())
        )
    return bool(held.rowcount)


def heartbeat(engine: Engine, job_id: str, worker_id: str) -> bool:
    """Beat; False when the job is no longer this worker's (recovered by another, or finished)."""
    return _update_held(engine, job_id, worker_id, heartbeat_at=now_ms())


def request_cancel(engine: Engine, job_id: str) -> None:
    """Ask for a cancel: a QUEUED job is cancelled at once, a RUNNING one by its worker."""
    now = now_ms()
    c = jobs.c
    with engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(c.id == job_id, c.status == QUEUED)
            .values(status=CANCELLED, cancel_requested=True, finished_at=now, updated_at=now)
        )
        conn.execute(
            update(jobs)
            .where(c.id == job_id, c.status == RUNNING)
            .values(cancel_requested=True, updated_at=now)
        )


def cancel_requested(engine: Engine, job_id: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar_one_or_none()
        )


def finish(
    engine: Engine, job_id: str, worker_id: str, status: str, error_message: str | None = None
) -> bool:
    """End a job this worker holds; False if it was taken away meanwhile."""
    return _update_held(
        engine, job_id, worker_id, status=status, error_message=error_message, finished_at=now_ms()
    )


def requeue(engine: Engine, job_id: str, worker_id: str, error_message: str) -> bool:
    """Give a job this worker holds back to the queue (another attempt), noting why."""
    return _update_held(engine, job_id, worker_id, status=QUEUED, worker_id=None, error_message=error_message)


def recover_stale(
    engine: Engine, stale_after_ms: int, message: str, *, dead: Callable[[Job], bool] | None = None
) -> list[Job]:
    """Jobs whose worker stopped beating: requeued while attempts remain, else ERROR.

    ``dead`` may name more jobs whose worker is known to be gone, whatever their heartbeat says
    (a worker on this host whose process no longer exists). Returns the jobs as they are after
    recovery (so a caller can update their subjects).
    """
    c = jobs.c
    cutoff = now_ms() - stale_after_ms
    with engine.connect() as conn:
        running = [_job(r) for r in conn.execute(select(jobs).where(c.status == RUNNING))]
    stale = [j for j in running if (j.heartbeat_at or 0) < cutoff or (dead is not None and dead(j))]
    recovered: list[Job] = []
    for job in stale:
        retry = job.attempts < job.max_attempts and not job.cancel_requested
        now = now_ms()
        values: dict[str, Any] = {"worker_id": None, "updated_at": now, "error_message": message}
        if retry:
            values["status"] = QUEUED
        else:
            values.update(status=ERROR, finished_at=now)
        with engine.begin() as conn:
            done = conn.execute(
                update(jobs)
                .where(c.id == job.id, c.status == RUNNING, c.heartbeat_at == job.heartbeat_at)
                .values(**values)
            ).rowcount
        if done:
            recovered.append(get(engine, job.id) or job)
    return recovered


def release(engine: Engine, job_id: str, worker_id: str, message: str) -> bool:
    """Hand back a job this worker holds without spending its attempt (the worker is shutting
    down, which is no fault of the job); False if it was taken away meanwhile."""
    return _update_held(
        engine,
        job_id,
        worker_id,
        status=QUEUED,
        worker_id=None,
        attempts=jobs.c.attempts - 1,
        error_message=message,
    )
