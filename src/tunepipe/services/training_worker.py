"""The training worker: a loop that takes ``train`` jobs from the ``jobs`` table and runs them,
one at a time, each as a training child process (:mod:`tunepipe.services.training_run`).

Any number of workers — inside ``tunepipe serve`` or alone as ``tunepipe worker``, on one host
or many — share the queue through the database: claiming is atomic (:func:`tunepipe.db.jobs.claim`),
so each job runs once. Between claims a worker recovers jobs whose worker stopped beating (a
killed process, a lost host) or, on its own host, whose worker process is gone (a server
restarted after a crash: recovered at once rather than after ``job_stale_after_s``): they are
retried while attempts remain, else failed, and their fine-tunes follow (QUEUED again, or ERROR).

Nothing escapes the loop: an exception while running a job fails that job and its fine-tune with
"internal error: …" and the worker goes on with the next. Shutting down (:meth:`TrainingWorker.close`)
stops a running child and hands its job back to the queue without spending an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket

from sqlalchemy import Engine

from tunepipe.db import fine_tunes as repo
from tunepipe.db import jobs
from tunepipe.db.jobs import Job
from tunepipe.domain.fine_tunes import UNFINISHED, FineTuneStatus
from tunepipe.services.training_run import Evaluate, TrainingRun
from tunepipe.settings import Settings

log = logging.getLogger(__name__)

TRAIN = "train"
STALE_MESSAGE = "the worker running this job stopped (process died?)"


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker, and says where to look when a job goes stale."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


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


class TrainingWorker:
    """Runs queued training jobs until closed.

    Args:
        settings: worker timing (``worker_poll_s``, ``job_heartbeat_s``, ``job_stale_after_s``),
            ``training_device`` and ``home`` (where job directories and adapters live).
        engine: the database.
        evaluate: runs a freshly trained fine-tune on its test set; its metrics are merged into
            the model's. None skips evaluation.
        worker_id: this worker's name on the jobs it holds (default: :func:`default_worker_id`).
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        evaluate: Evaluate | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.evaluate = evaluate
        self.worker_id = worker_id or default_worker_id()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._run: TrainingRun | None = None

    @property
    def child_pid(self) -> int | None:
        """The pid of the training process now running, if any."""
        return self._run.pid if self._run is not None else None

    @property
    def current_job_id(self) -> str | None:
        return self._run.job.id if self._run is not None else None

    async def start(self) -> None:
        """Start the polling loop as a task of the running event loop."""
        if self._task is None:
            self._closing = False
            self._wake.clear()
            self._task = asyncio.create_task(self._loop(), name=f"training-worker {self.worker_id}")
            log.info("training worker %s started", self.worker_id)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop the loop. A running child is terminated and its job handed back to the queue
        (message "worker shut down"), its fine-tune QUEUED again."""
        self._closing = True
        self._wake.set()
        if self._run is not None:
            self._run.stop("shutdown")
        task, self._task = self._task, None
        if task is None:
            return
        _, pending = await asyncio.wait({task}, timeout=timeout_s)
        if pending:
            log.warning("training worker %s did not stop in %.0f s; cancelling it", self.worker_id, timeout_s)
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        log.info("training worker %s stopped", self.worker_id)

    async def run_once(self) -> bool:
        """Recover stale jobs, then claim and run at most one job; True if one ran."""
        if self._closing:
            return False
        await self.recover()
        job = await asyncio.to_thread(jobs.claim, self.engine, self.worker_id, (TRAIN,))
        if job is None:
            return False
        log.info("job %s claimed (fine-tune %s, attempt %d)", job.id, job.subject_id, job.attempts)
        run = TrainingRun(self.settings, self.engine, job, self.worker_id, self.evaluate)
        self._run = run
        if self._closing:  # close() came while the claim was on its way
            run.stop("shutdown")
        try:
            await run.run()
        except Exception as exc:  # the job boundary: fail this job, keep the worker
            log.exception("job %s failed with an internal error", job.id)
            try:
                await asyncio.to_thread(run.fail, f"internal error: {exc}")
            except Exception:
                log.exception("job %s: recording the internal error failed too", job.id)
        finally:
            self._run = None
        return True

    async def recover(self) -> int:
        """Hand back jobs whose worker stopped beating and update their fine-tunes; how many."""
        stale_after_ms = int(self.settings.job_stale_after_s * 1000)
        recovered = await asyncio.to_thread(
            jobs.recover_stale, self.engine, stale_after_ms, STALE_MESSAGE, dead=worker_gone
        )
        for job in recovered:
            log.warning("job %s recovered from a stopped worker: now %s", job.id, job.status)
            if job.kind == TRAIN:
                await asyncio.to_thread(settle_recovered, self.engine, job)
        return len(recovered)

    async def _loop(self) -> None:
        while not self._closing:
            try:
                ran = await self.run_once()
            except Exception:  # the database may be away for a while; keep polling
                log.exception("training worker %s: polling for jobs failed", self.worker_id)
                ran = False
            if ran or self._closing:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_s)


def settle_recovered(engine: Engine, job: Job) -> None:
    """Bring a fine-tune in line with its job after :func:`jobs.recover_stale` handed it back:
    QUEUED again (the message kept in its progress), or ERROR."""
    ft = repo.get_by_id(engine, job.subject_id)
    if ft is None or ft.status not in UNFINISHED:
        return
    if job.status == jobs.QUEUED:
        progress = {**(ft.progress or {}), "stage": "queued", "message": job.error_message}
        repo.update_fine_tune(engine, ft.id, status=FineTuneStatus.QUEUED.value, progress=progress)
    elif job.status == jobs.ERROR:
        message = "cancelled" if job.cancel_requested else job.error_message
        repo.update_fine_tune(engine, ft.id, status=FineTuneStatus.ERROR.value, error_message=message)
