"""The job queue's use cases: enqueue (inside another use case's transaction), change a job's
status with its subject following, list, get and cancel jobs, recover jobs of dead workers.

A job's subject may show the job's state (a fine-tune's status follows its train job,
:data:`FOLLOWERS`); :func:`transition` changes both in one transaction, so no status is ever
written anywhere else.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

from tunepipe.db import changes
from tunepipe.db import fine_tunes as fine_tune_repo
from tunepipe.db import jobs as repo
from tunepipe.db.database import Database
from tunepipe.domain.jobs import Job, JobEvent, JobKind, JobStatus, after_crash
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

Follower = Callable[[Connection, Job], None]
FOLLOWERS: dict[str, Follower] = {JobKind.TRAIN: fine_tune_repo.follow}
"""What shows a job's state, by kind: called with the job after each change, in its transaction."""

STALE_MESSAGE = "the worker running this job stopped (process died?)"

SCOPE = "jobs"
"""Change-feed scope of newly queued jobs (the key is the kind): idle workers wake up for them."""


def _follow(conn: Connection, job: Job) -> Job:
    follower = FOLLOWERS.get(job.kind)
    if follower is not None:
        follower(conn, job)
    return job


def enqueue(
    conn: Connection,
    kind: str,
    project_id: str,
    subject_id: str,
    *,
    params: dict[str, Any] | None = None,
    max_attempts: int = 2,
) -> Job:
    """Queue a job in ``conn``'s transaction (the use case that makes the work makes the job);
    the caller announces it on the change feed once committed (``feed.changed(SCOPE, kind)``)."""
    job = repo.enqueue(conn, kind, project_id, subject_id, params=params, max_attempts=max_attempts)
    changes.record(conn, SCOPE, kind)
    return _follow(conn, job)


def transition(
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
    """Apply ``event`` (if the job is still as ``job`` shows it) and let its subject follow."""
    changed = repo.apply(
        conn,
        job,
        event,
        worker_id=worker_id,
        message=message,
        progress=progress,
        result=result,
        seen_heartbeat=seen_heartbeat,
    )
    return _follow(conn, changed) if changed is not None else None


def claim(conn: Connection, worker_id: str, kinds: Sequence[str]) -> Job | None:
    job = repo.claim(conn, worker_id, kinds)
    return _follow(conn, job) if job is not None else None


def cancel(conn: Connection, job: Job) -> Job:
    """Cancel ``job``: at once when it waits (its subject follows), by its worker when it runs."""
    if job.finished:
        return job
    if job.status is JobStatus.QUEUED:
        done = transition(conn, job, JobEvent.CANCELLED)
        if done is not None:
            return done
    return repo.request_cancel(conn, repo.get(conn, job.id) or job) or job


def cancel_for_subject(conn: Connection, subject_id: str) -> None:
    for job in repo.for_subject(conn, subject_id):
        if not job.finished:
            cancel(conn, job)


def worker_gone(job: Job) -> bool:
    """Whether the job's worker was a process of this host that no longer exists: a server
    restarted after a crash recovers its old jobs at once instead of after the stale timeout.
    (A reused pid only delays recovery to the timeout.)"""
    host, _, rest = (job.worker_id or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def recover_stale(conn: Connection, stale_after_ms: int, now: int) -> list[Job]:
    """Running jobs whose worker stopped beating (or, on this host, whose process is gone):
    queued again while attempts remain, else failed (cancelled if a cancel was asked). Returns
    the jobs as they are after recovery."""
    cutoff = now - stale_after_ms
    recovered: list[Job] = []
    for job in repo.running(conn):
        if (job.heartbeat_at or 0) >= cutoff and not worker_gone(job):
            continue
        done = transition(conn, job, after_crash(job), message=STALE_MESSAGE, seen_heartbeat=True)
        if done is not None:
            recovered.append(done)
    return recovered


class JobService:
    """The jobs of a project, through the API and the CLI."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_jobs(
        self,
        principal: Principal,
        *,
        kinds: Sequence[str] = (),
        subject_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        if status is not None and status not in JobStatus.__members__:
            raise InvalidRequest(f"`status` must be one of {', '.join(JobStatus)}", param="status")
        unknown = [k for k in kinds if k not in {kind.value for kind in JobKind}]
        if unknown:
            raise InvalidRequest(f"`kind` must be one of {', '.join(JobKind)}", param="kind")
        return await self._db.run(
            repo.list_jobs,
            principal.project.id,
            kinds=kinds,
            subject_id=subject_id,
            status=status,
            limit=limit,
        )

    async def open_counts(self) -> dict[tuple[str, str], int]:
        """Jobs queued and running in the whole installation, by (kind, status), for metrics
        (no project in them)."""
        return await self._db.run(repo.open_counts)

    async def get(self, principal: Principal, job_id: str, *, subject_id: str | None = None) -> Job:
        """A job of the project (of ``subject_id``, the dataset of a dataset route)."""
        return await self._db.run(job_in, principal, job_id, subject_id)

    async def cancel(self, principal: Principal, job_id: str, *, subject_id: str | None = None) -> Job:
        """Cancel a job of the project (a finished one is returned as it is)."""

        def run(conn: Connection) -> Job:
            return cancel(conn, job_in(conn, principal, job_id, subject_id))

        return await self._db.run(run)


def job_in(conn: Connection, principal: Principal, job_id: str, subject_id: str | None = None) -> Job:
    job = repo.get(conn, job_id, principal.project.id)
    if job is None or (subject_id is not None and job.subject_id != subject_id):
        where = f"dataset {subject_id!r}" if subject_id is not None else "this project"
        raise NotFound(f"No job {job_id!r} in {where}")
    return job
