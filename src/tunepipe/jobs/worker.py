"""The worker: takes jobs from the ``jobs`` table and runs each with its kind's handler.

Any number of workers — inside ``tunepipe serve`` or alone as ``tunepipe worker``, on one host
or many — share the queue through the database: claiming is atomic
(:func:`tunepipe.db.jobs.claim`), so each job runs once. Work is grouped in *lanes*, each with its
own slots: training (one job at a time, it takes the whole machine) and dataset work (imports
and relabels, a few at a time), so a long training never holds up an import.

Beside each running job the worker beats its heartbeat every ``job_heartbeat_s`` and watches
for a cancel request; it tells the handler to stop through the job's context when one comes,
when the job turns out to have been taken over by another worker (its heartbeat was found
stale), or when the worker shuts down. Between claims it recovers jobs whose worker stopped
beating (a killed process, a lost host) or, on its own host, whose worker process is gone (a
server restarted after a crash: recovered at once rather than after ``job_stale_after_s``):
they are retried while attempts remain, else failed.

How the handler ended decides the job's next status (:mod:`tunepipe.domain.jobs`), applied in
one transaction with whatever follows the job (a fine-tune's status). Nothing escapes a job: an
exception fails that job with "internal error: …" and the worker goes on. Shutting down
(:meth:`Worker.close`) stops running jobs and hands them back without spending an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from tunepipe.db import jobs as repo
from tunepipe.db.database import Database
from tunepipe.db.outage import Throttled, summary, unavailable
from tunepipe.domain.clock import now_ms
from tunepipe.domain.jobs import Job, JobEvent, JobStatus, after_crash
from tunepipe.services.jobs import queue
from tunepipe.services.jobs.context import Handler, JobContext, JobCrashed, JobFailed, JobStopped
from tunepipe.settings import Settings
from tunepipe.telemetry.metrics import JOBS_FINISHED, JOBS_RUNNING_HERE

log = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "worker shut down"


@dataclass(frozen=True, slots=True)
class Lane:
    name: str
    kinds: tuple[str, ...]
    slots: int


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker, and says where to look when a job goes stale."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Worker:
    """Runs queued jobs until closed.

    Args:
        settings: timing (``worker_poll_s``, ``job_heartbeat_s``, ``job_stale_after_s``).
        db: the database.
        handlers: a handler per job kind; the worker claims only these kinds.
        lanes: how the kinds share the worker (every kind must be in one lane).
        worker_id: this worker's name on the jobs it holds (default: :func:`default_worker_id`).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        handlers: Mapping[str, Handler],
        lanes: Sequence[Lane],
        *,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.handlers = dict(handlers)
        self.lanes = [
            Lane(lane.name, tuple(k for k in lane.kinds if k in self.handlers), lane.slots) for lane in lanes
        ]
        self.lanes = [lane for lane in self.lanes if lane.kinds and lane.slots > 0]
        self.worker_id = worker_id or default_worker_id()
        self.running: dict[str, JobContext] = {}  # job id → context
        self._lane_tasks: list[asyncio.Task[None]] = []
        self._job_tasks: set[asyncio.Task[None]] = set()
        self._wakes = {lane.name: asyncio.Event() for lane in self.lanes}
        self._closing = False
        self._recovered_at = 0.0
        # An unreachable database fails every poll of every lane: one line per interval.
        self._poll_errors = Throttled(log, settings.db_error_log_interval_s)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for lane in self.lanes for k in lane.kinds)

    async def start(self) -> None:
        """Start polling, one loop per lane, as tasks of the running event loop."""
        if self._lane_tasks:
            return
        self._closing = False
        for lane in self.lanes:
            self._lane_tasks.append(asyncio.create_task(self._lane(lane), name=f"worker-{lane.name}"))
        log.info("worker %s started (%s)", self.worker_id, ", ".join(self.kinds))

    def wake(self) -> None:
        """Look for queued jobs now (a job was just queued)."""
        for event in self._wakes.values():
            event.set()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop: running jobs are asked to stop and handed back to the queue (their attempt is
        not spent); after ``timeout_s`` they are cancelled (and handed back all the same)."""
        self._closing = True
        self.wake()
        for ctx in self.running.values():
            ctx.stop("shutdown")
        tasks = [*self._lane_tasks, *self._job_tasks]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._lane_tasks.clear()
        log.info("worker %s stopped", self.worker_id)

    async def run_once(self) -> bool:
        """Recover stale jobs, then claim and run at most one job; True if one ran."""
        if self._closing:
            return False
        await self.recover()
        job = await self.db.run(queue.claim, self.worker_id, self.kinds)
        if job is None:
            return False
        await self._run(job)
        return True

    async def recover(self) -> list[Job]:
        """Hand back jobs whose worker stopped beating; the jobs as they are now."""
        stale_after_ms = int(self.settings.job_stale_after_s * 1000)
        recovered = await self.db.run(queue.recover_stale, stale_after_ms, now_ms())
        for job in recovered:
            log.warning("job %s recovered from a stopped worker: now %s", job.id, job.status)
        return recovered

    # The loops

    async def _lane(self, lane: Lane) -> None:
        busy: set[asyncio.Task[None]] = set()
        wake = self._wakes[lane.name]
        while not self._closing:
            wake.clear()  # before looking: a job queued from now on wakes the wait below
            try:
                job = None
                if len(busy) < lane.slots:
                    await self._recover_now_and_then()
                    job = await self.db.run(queue.claim, self.worker_id, lane.kinds)
                    self._poll_errors.recovered("worker %s: polling for jobs works again", self.worker_id)
            except Exception as exc:  # the database may be away for a while; keep polling
                if unavailable(exc):
                    self._poll_errors.error(
                        "worker %s: polling for %s jobs failed: %s", self.worker_id, lane.name, summary(exc)
                    )
                else:
                    log.exception("worker %s: polling for %s jobs failed", self.worker_id, lane.name)
                job = None
            if job is not None and not self._closing:
                task = asyncio.create_task(self._run(job), name=f"job-{job.kind}-{job.id}")
                busy.add(task)
                self._job_tasks.add(task)
                task.add_done_callback(busy.discard)
                task.add_done_callback(self._job_tasks.discard)
                continue
            if job is not None:  # claimed while closing: give it straight back
                await self._settle(JobContext(self.db, job, self.worker_id), "released", SHUTDOWN_MESSAGE)
                continue
            waits = [asyncio.ensure_future(wake.wait()), *busy]
            await asyncio.wait(
                waits, timeout=self.settings.worker_poll_s, return_when=asyncio.FIRST_COMPLETED
            )
            waits[0].cancel()

    async def _recover_now_and_then(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._recovered_at >= self.settings.worker_poll_s:
            self._recovered_at = loop_now
            await self.recover()

    # One job

    async def _run(self, job: Job) -> None:
        ctx = JobContext(self.db, job, self.worker_id)
        self.running[job.id] = ctx
        if self._closing:
            ctx.stop("shutdown")
        log.info("job %s (%s, attempt %d) claimed", job.id, job.kind, job.attempts)
        watcher = asyncio.create_task(self._watch(ctx), name=f"job-watch-{job.id}")
        outcome: tuple[str, Any] = ("failed", "internal error: no outcome")
        running = JOBS_RUNNING_HERE.labels(job.kind)
        running.inc()
        try:
            handler = self.handlers[job.kind]
            result = await handler(ctx)
            outcome = ("stopped", None) if ctx.stop_reason == "lost" else ("succeeded", result)
        except JobStopped:
            outcome = ("stopped", None)
        except JobFailed as exc:
            outcome = ("failed", str(exc))
        except JobCrashed as exc:
            outcome = ("crashed", str(exc))
        except asyncio.CancelledError:  # the worker is being torn down: hand the job back
            outcome = ("released", SHUTDOWN_MESSAGE)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._settle(ctx, *outcome))
            raise
        except Exception as exc:  # the job boundary: fail this job, keep the worker
            log.exception("job %s failed with an internal error", job.id)
            outcome = ("failed", f"internal error: {exc}")
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self.running.pop(job.id, None)
            running.dec()
        await self._settle(ctx, *outcome)

    async def _settle(self, ctx: JobContext, outcome: str, detail: Any) -> None:
        """Apply how the job ended, if it is still this worker's."""
        if outcome == "stopped":
            reason = ctx.stop_reason
            if reason == "lost":
                log.warning("job %s was taken over by another worker; this run stops", ctx.job.id)
                return
            outcome, detail = ("cancelled", None) if reason == "cancelled" else ("released", SHUTDOWN_MESSAGE)
        try:
            await ctx.flush()
        except Exception:
            log.exception("job %s: writing its last progress failed", ctx.job.id)

        def settle(conn: Connection) -> Job | None:
            current = repo.get(conn, ctx.job.id)
            if (
                current is None
                or current.status is not JobStatus.RUNNING
                or current.worker_id != self.worker_id
            ):
                return None  # recovered by another worker, or gone: not this worker's to settle
            event = {
                "succeeded": JobEvent.SUCCEEDED,
                "failed": JobEvent.FAILED,
                "cancelled": JobEvent.CANCELLED,
                "released": JobEvent.RELEASED,
                "crashed": after_crash(current),
            }[outcome]
            message = detail if isinstance(detail, str) else (ctx.note if outcome == "succeeded" else None)
            return queue.transition(
                conn,
                current,
                event,
                worker_id=self.worker_id,
                message=message,
                progress=ctx.progress,
                result=detail if outcome == "succeeded" and isinstance(detail, dict) else None,
            )

        try:
            done = await self.db.run(settle)
        except Exception:
            log.exception("job %s: recording how it ended failed; it will be recovered as stale", ctx.job.id)
            return
        if done is None:
            log.warning("job %s was taken away before it could be settled (%s)", ctx.job.id, outcome)
        else:
            log.info("job %s (%s): %s", done.id, done.kind, done.status)
            JOBS_FINISHED.labels(done.kind, done.status.lower()).inc()

    async def _watch(self, ctx: JobContext) -> None:
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_s)
            try:
                held, cancel = await self.db.run(_beat, ctx.job.id, self.worker_id)
            except Exception:  # a missed beat is survivable; a dead watcher would stop them all
                log.exception("job %s: heartbeat failed", ctx.job.id)
                continue
            if not held:
                ctx.stop("lost")
                return
            if cancel:
                log.info("job %s: cancel requested", ctx.job.id)
                ctx.stop("cancelled")


def _beat(conn: Connection, job_id: str, worker_id: str) -> tuple[bool, bool]:
    """Beat; and whether the job is still this worker's and whether a cancel was asked."""
    held = repo.heartbeat(conn, job_id, worker_id)
    return held, held and repo.cancel_requested(conn, job_id)
