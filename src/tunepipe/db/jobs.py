"""Rows of ``jobs``: enqueue, claim, beat, record progress, and apply status changes.

Every status change goes through :func:`apply`, which writes the columns
:func:`tunepipe.domain.jobs.change` decides, guarded by a condition on the row as the caller
last saw it (its status; for a held job, its worker; for a recovered one, its last heartbeat).
A change whose condition no longer holds matches nothing and returns None: another worker or a
cancel got there first, and the caller leaves the job alone.

Claiming is one such conditional ``UPDATE … WHERE status = 'QUEUED'``: on SQLite writes are
serialised and on Postgres the second claimer's UPDATE re-checks the row after the first
commits and matches nothing, so exactly one worker gets each job without explicit locks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select, update

from tunepipe.db.schema import jobs
from tunepipe.domain.clock import now_ms
from tunepipe.domain.ids import uuid7
from tunepipe.domain.jobs import HELD, Job, JobEvent, JobStatus, change

JSON_COLUMNS = ("params", "progress", "result")


def _job(row: Any) -> Job:
    values = dict(row._mapping)
    values["status"] = JobStatus(values["status"])
    values["params"] = orjson.loads(values["params"]) if values["params"] else {}
    values["progress"] = orjson.loads(values["progress"]) if values["progress"] else {}
    values["result"] = orjson.loads(values["result"]) if values["result"] else None
    return Job(**values)


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for col in JSON_COLUMNS:
        if col in out:
            out[col] = None if out[col] is None else orjson.dumps(out[col]).decode()
    if "status" in out:
        out["status"] = str(out["status"])
    return out


def enqueue(
    conn: Connection,
    kind: str,
    project_id: str,
    subject_id: str,
    *,
    params: dict[str, Any] | None = None,
    max_attempts: int = 2,
) -> Job:
    now = now_ms()
    job = Job(
        id=uuid7(),
        kind=kind,
        project_id=project_id,
        subject_id=subject_id,
        status=JobStatus.QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        worker_id=None,
        heartbeat_at=None,
        cancel_requested=False,
        error_message=None,
        params=params or {},
        progress={"stage": "queued"},
        result=None,
        created_at=now,
        updated_at=now,
        started_at=None,
        finished_at=None,
    )
    conn.execute(insert(jobs).values(**_encode({f: getattr(job, f) for f in Job.__dataclass_fields__})))
    return job


def get(conn: Connection, job_id: str, project_id: str | None = None) -> Job | None:
    query = select(jobs).where(jobs.c.id == job_id)
    if project_id is not None:
        query = query.where(jobs.c.project_id == project_id)
    row = conn.execute(query).first()
    return _job(row) if row else None


def list_jobs(
    conn: Connection,
    project_id: str,
    *,
    kinds: Sequence[str] = (),
    subject_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[Job]:
    """The project's most recent jobs, newest first."""
    c = jobs.c
    query = select(jobs).where(c.project_id == project_id)
    if kinds:
        query = query.where(c.kind.in_(list(kinds)))
    if subject_id is not None:
        query = query.where(c.subject_id == subject_id)
    if status is not None:
        query = query.where(c.status == status)
    query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
    return [_job(r) for r in conn.execute(query)]


def for_subject(conn: Connection, subject_id: str) -> list[Job]:
    """Every job of one subject, oldest first."""
    c = jobs.c
    rows = conn.execute(select(jobs).where(c.subject_id == subject_id).order_by(c.created_at, c.id))
    return [_job(r) for r in rows]


def latest_for(conn: Connection, subject_ids: Iterable[str], kind: str) -> dict[str, Job]:
    """The newest job of ``kind`` of each subject that has one."""
    ids = list(dict.fromkeys(subject_ids))
    latest: dict[str, Job] = {}
    c = jobs.c
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(jobs)
            .where(c.subject_id.in_(ids[start : start + 500]), c.kind == kind)
            .order_by(c.created_at, c.id)
        )
        for row in rows:
            latest[row.subject_id] = _job(row)  # ascending: the last one wins
    return latest


def claim(conn: Connection, worker_id: str, kinds: Sequence[str], *, scan: int = 10) -> Job | None:
    """Take the oldest QUEUED job of ``kinds`` for ``worker_id``, or None if there is none."""
    c = jobs.c
    candidates = conn.execute(
        select(jobs)
        .where(c.status == JobStatus.QUEUED.value, c.kind.in_(list(kinds)), c.cancel_requested.is_(False))
        .order_by(c.created_at, c.id)
        .limit(scan)
    ).all()
    for row in candidates:
        claimed = apply(conn, _job(row), JobEvent.CLAIMED, worker_id=worker_id)
        if claimed is not None:
            return claimed
    return None


def apply(
    conn: Connection,
    job: Job,
    event: JobEvent,
    *,
    worker_id: str | None = None,
    message: str | None = None,
    progress: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    seen_heartbeat: bool = False,
) -> Job | None:
    """Apply ``event`` to ``job`` if the row is still as ``job`` shows it; the job after it, or
    None when the change no longer applies.

    ``worker_id`` is the claimer for CLAIMED and the holder for the events only a holder may
    cause; ``seen_heartbeat`` also requires the heartbeat ``job`` carries (recovering a worker
    that stopped beating must not race one that just beat).
    """
    c = jobs.c
    values = change(
        job, event, now=now_ms(), worker_id=worker_id, message=message, progress=progress, result=result
    )
    conds = [c.id == job.id, c.status == job.status.value]
    if event in HELD or (event is JobEvent.CANCELLED and job.status is JobStatus.RUNNING and worker_id):
        conds.append(c.worker_id == (worker_id or job.worker_id))
    if seen_heartbeat:
        conds.append(
            c.heartbeat_at == job.heartbeat_at if job.heartbeat_at is not None else c.heartbeat_at.is_(None)
        )
    if not conn.execute(update(jobs).where(*conds).values(**_encode(values))).rowcount:
        return None
    return get(conn, job.id)


def _update_held(conn: Connection, job_id: str, worker_id: str, **values: Any) -> bool:
    c = jobs.c
    done = conn.execute(
        update(jobs)
        .where(c.id == job_id, c.worker_id == worker_id, c.status == JobStatus.RUNNING.value)
        .values(**_encode(values), updated_at=now_ms())
    )
    return bool(done.rowcount)


def heartbeat(conn: Connection, job_id: str, worker_id: str) -> bool:
    """Beat; False when the job is no longer this worker's (recovered by another, or finished)."""
    return _update_held(conn, job_id, worker_id, heartbeat_at=now_ms())


def set_progress(conn: Connection, job_id: str, worker_id: str, progress: dict[str, Any]) -> bool:
    """Record progress (a beat too); False when the job is no longer this worker's."""
    return _update_held(conn, job_id, worker_id, progress=progress, heartbeat_at=now_ms())


def request_cancel(conn: Connection, job: Job) -> Job | None:
    """Ask for a cancel: a QUEUED job is cancelled at once, a RUNNING one is flagged for its
    worker, which stops it. The job after the request (None if it finished meanwhile)."""
    if job.status is JobStatus.QUEUED:
        cancelled = apply(conn, job, JobEvent.CANCELLED)
        if cancelled is not None:
            return cancelled
        current = get(conn, job.id)
        if current is None or current.status is not JobStatus.RUNNING:
            return current
        job = current
    if job.status is JobStatus.RUNNING:
        c = jobs.c
        conn.execute(
            update(jobs)
            .where(c.id == job.id, c.status == JobStatus.RUNNING.value)
            .values(cancel_requested=True, updated_at=now_ms())
        )
    return get(conn, job.id)


def cancel_requested(conn: Connection, job_id: str) -> bool:
    return bool(conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar_one_or_none())


def running(conn: Connection) -> list[Job]:
    return [_job(r) for r in conn.execute(select(jobs).where(jobs.c.status == JobStatus.RUNNING.value))]


def open_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Jobs queued and running, of every project, by (kind, status)."""
    open_statuses = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
    rows = conn.execute(
        select(jobs.c.kind, jobs.c.status, func.count())
        .where(jobs.c.status.in_(open_statuses))
        .group_by(jobs.c.kind, jobs.c.status)
    )
    return {(kind, status): int(count) for kind, status, count in rows}
