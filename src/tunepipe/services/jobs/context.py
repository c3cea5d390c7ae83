"""What a running job's handler gets from the worker, and how it tells the worker how it ended.

A handler is an ``async`` function of a :class:`JobContext`. It returns the job's result (a
dict, stored on the job) when it succeeded; it raises :class:`JobFailed` for a failure a user
can act on, :class:`JobCrashed` for an attempt that died of something another attempt may not
hit (a killed process), and :class:`JobStopped` once it honoured a stop request
(:attr:`JobContext.stop_reason`). Anything else it raises fails the job as an internal error.

The worker beats the job's heartbeat and watches for a cancel request beside the handler; the
handler checks :meth:`JobContext.checkpoint` between units of work (a batch, a page) or, for
work it cannot interrupt, waits on :attr:`JobContext.stopping`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from tunepipe.db import jobs as repo
from tunepipe.db import projects as project_repo
from tunepipe.db.database import Database
from tunepipe.domain.jobs import Job
from tunepipe.domain.projects import Principal

StopReason = Literal["cancelled", "lost", "shutdown"]
"""cancelled: a user asked; lost: another worker took the job over (its heartbeat was found
stale), so it is no longer this worker's to settle; shutdown: the worker is stopping."""

Handler = Callable[["JobContext"], Awaitable[dict[str, Any] | None]]

PROGRESS_INTERVAL_S = 0.5


class JobFailed(Exception):
    """The job cannot succeed as asked; the message is shown as its ``error_message``."""


class JobCrashed(Exception):
    """The attempt died; the job is retried while attempts remain, else failed with this message."""


class JobStopped(Exception):
    """The handler stopped because it was asked to (:attr:`JobContext.stop_reason`)."""


class JobContext:
    def __init__(self, db: Database, job: Job, worker_id: str) -> None:
        self.db = db
        self.job = job
        self.worker_id = worker_id
        self.stopping = asyncio.Event()
        self.stop_reason: StopReason | None = None
        self.progress: dict[str, Any] = dict(job.progress)
        self.child_pid: int | None = None  # a process doing the work, if not this one
        self.note: str | None = None  # a succeeded job's message (what went wrong on the way)
        self._written_at = 0.0
        self._pending = False

    def stop(self, reason: StopReason) -> None:
        """Ask the handler to stop (the first reason given wins)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopping.set()

    async def principal(self) -> Principal:
        """Who the job acts for: whoever queued it held a read/write key of its project."""
        project = await self.db.run(project_repo.project_by_id, self.job.project_id)
        if project is None:
            raise JobFailed("the project was deleted")
        return Principal(project=project, key_id=f"job:{self.job.id}", read_only=False)

    def checkpoint(self) -> None:
        """Raise :class:`JobStopped` if the job was asked to stop."""
        if self.stop_reason is not None:
            raise JobStopped(self.stop_reason)

    async def report(self, **values: Any) -> None:
        """Merge ``values`` into the job's progress; written at most twice a second (the last
        write of a burst is kept for :meth:`flush`), each write beating the heartbeat too."""
        self.progress.update(values, attempt=self.job.attempts)
        self._pending = True
        if time.monotonic() - self._written_at >= PROGRESS_INTERVAL_S:
            await self.flush()

    async def flush(self) -> None:
        """Write the progress not yet written."""
        if not self._pending or self.stop_reason == "lost":
            return
        self._pending = False
        self._written_at = time.monotonic()
        snapshot = dict(self.progress)
        if not await self.db.run(repo.set_progress, self.job.id, self.worker_id, snapshot):
            self.stop("lost")
