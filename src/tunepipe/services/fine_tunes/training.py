"""The ``train`` job's handler: the job directory, the training child process, the adapter, the
test set.

The trainer runs as a child process (``python -m tunepipe.training <job_dir>``, its own session)
so that an out-of-memory kill or a crash in a native library never takes the worker down. The
handler talks to it only through the job directory and the child's stdout (one JSON event per
line, see :mod:`tunepipe.training`); progress events become the job's progress
(:meth:`~tunepipe.services.jobs.context.JobContext.report`).

When the worker asks the job to stop (a cancel, a shutdown, or the job found taken over by
another worker), the child gets SIGTERM, and SIGKILL after a grace period (at once when the job
is no longer this worker's). Once the child has succeeded, a cancel no longer stops the run.

How a run ends (the worker applies it to the job; the fine-tune follows in the same
transaction, :func:`tunepipe.domain.fine_tunes.follow_job`):

- the child exits 0 with a ``done`` event: the adapter is stored (DB + ``TUNEPIPE_HOME``), the
  test set evaluated if an evaluator was given, and the metrics returned: the job is DONE and
  the fine-tune DEPLOYED with them;
- the child was killed by a signal (an OOM kill, say): :class:`JobCrashed`, retried while
  attempts remain (another attempt may well fit);
- any other failure: :class:`JobFailed`, with the child's ``error`` message or one made from its
  exit status and the tail of its stderr.

The job directory, ``TUNEPIPE_HOME/jobs/<job id>-<attempt>/``, is removed after a successful run
and kept after a failed one for debugging (``stderr.log``, ``training_log.jsonl``, the config).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from tunepipe.db import fine_tunes as repo
from tunepipe.db import jobs as job_repo
from tunepipe.db.database import Database
from tunepipe.domain.fine_tunes import FineTune
from tunepipe.services.fine_tunes.files import store_adapter
from tunepipe.services.fine_tunes.job_dir import write_job_dir
from tunepipe.services.jobs.context import JobContext, JobCrashed, JobFailed, JobStopped
from tunepipe.settings import Settings
from tunepipe.training.config import ADAPTER_DIR, LOG_FILE, METRICS_FILE

log = logging.getLogger(__name__)

Evaluate = Callable[[FineTune], Awaitable[dict[str, Any]]]
"""Runs a deployed-to-be fine-tune on its test set; returns metrics merged into the model's."""

STDERR_FILE = "stderr.log"
KILL_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
LINE_LIMIT = 64 * 1024 * 1024  # one stdout event (the done event carries all metrics)
PROGRESS_KEYS = (
    "stage",
    "step",
    "total_steps",
    "loss",
    "eval_loss",
    "eta_s",
    "epoch",
    "learning_rate",
    "tokens_per_s",
)


@dataclass(slots=True)
class ChildResult:
    returncode: int = 0
    metrics: dict[str, Any] | None = None  # from the ``done`` event
    error: str | None = None  # from the ``error`` event


class Trainer:
    """The handler of ``train`` jobs (one :class:`TrainingRun` per attempt)."""

    def __init__(self, settings: Settings, db: Database, evaluate: Evaluate | None = None) -> None:
        self.settings = settings
        self.db = db
        self.evaluate = evaluate

    async def __call__(self, ctx: JobContext) -> dict[str, Any]:
        return await TrainingRun(self, ctx).run()


class TrainingRun:
    """One attempt at one claimed train job."""

    def __init__(self, trainer: Trainer, ctx: JobContext) -> None:
        self.settings = trainer.settings
        self.db = trainer.db
        self.evaluate = trainer.evaluate
        self.ctx = ctx
        self.job = ctx.job
        self.home = trainer.settings.home_dir
        self.job_dir = self.home / "jobs" / f"{self.job.id}-{self.job.attempts}"
        self._process: asyncio.subprocess.Process | None = None
        self._trained = False  # once the child succeeded, a cancel no longer stops the run

    async def run(self) -> dict[str, Any]:
        ft = await self.db.run(repo.get_by_id, self.job.subject_id)
        if ft is None:
            raise JobFailed("model deleted")
        await self.db.run(write_job_dir, self.home, ft, self.job_dir, device=self.settings.training_device)
        self.ctx.checkpoint()
        stopper = asyncio.create_task(self._stop_when_asked(), name=f"train-stop-{self.job.id}")
        try:
            result = await self._train()
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
            await self._reap()
        if self.ctx.stop_reason is not None and not (result.returncode == 0 and result.metrics is not None):
            raise JobStopped(self.ctx.stop_reason)
        if result.returncode != 0 or result.metrics is None:
            message = result.error or exit_message(result.returncode, self.job_dir / STDERR_FILE)
            log.warning(
                "job %s attempt %d failed: %s (kept: %s)",
                self.job.id,
                self.job.attempts,
                message,
                self.job_dir,
            )
            if result.returncode < 0:
                raise JobCrashed(message)
            raise JobFailed(message)
        self._trained = True
        return await self._finish(result.metrics)

    async def _finish(self, trained_metrics: dict[str, Any]) -> dict[str, Any]:
        ft = await self.db.run(self._store_adapter)
        metrics = dict(trained_metrics)
        if self.evaluate is not None:
            await self.ctx.report(stage="evaluating")
            await self.ctx.flush()
            try:
                metrics.update(await self.evaluate(ft))
            except Exception as exc:  # the model is trained; a failed evaluation does not undo that
                log.exception("fine-tune %s: evaluating the test set failed", ft.id)
                metrics["test_set_error"] = str(exc) or type(exc).__name__
        if self.ctx.stop_reason == "lost":
            raise JobStopped("lost")
        shutil.rmtree(self.job_dir, ignore_errors=True)
        log.info("fine-tune %s trained (job %s)", self.job.subject_id, self.job.id)
        return metrics

    def _store_adapter(self, conn: Connection) -> FineTune:
        """Keep the trained adapter (with the run's log and metrics inside, so a download carries
        them), if the job is still this worker's and its model still exists."""
        if not job_repo.heartbeat(conn, self.job.id, self.ctx.worker_id):
            self.ctx.stop("lost")
            raise JobStopped("lost")
        ft = repo.get_by_id(conn, self.job.subject_id)
        if ft is None:
            self.ctx.stop("cancelled")
            raise JobStopped("cancelled")
        adapter = self.job_dir / ADAPTER_DIR
        for name in (METRICS_FILE, LOG_FILE):
            if (self.job_dir / name).is_file():
                shutil.copyfile(self.job_dir / name, adapter / name)
        store_adapter(conn, self.home, self.job.subject_id, adapter)
        return ft

    async def _train(self) -> ChildResult:
        with (self.job_dir / STDERR_FILE).open("wb") as stderr:  # the child keeps its own descriptor
            self._process = proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tunepipe.training",
                str(self.job_dir),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        self.ctx.child_pid = proc.pid
        log.info("job %s attempt %d: training process %d started", self.job.id, self.job.attempts, proc.pid)
        result = ChildResult()
        assert proc.stdout is not None
        try:
            async for line in proc.stdout:
                event = _event(line)
                if event is None:
                    continue
                kind = event.get("event")
                if kind in ("start", "progress"):
                    await self.ctx.report(**_progress(event))
                elif kind == "done":
                    result.metrics = event.get("metrics") or {}
                elif kind == "error":
                    result.error = str(event.get("message") or "training failed")
            result.returncode = await proc.wait()
        finally:
            self.ctx.child_pid = None
        if self.ctx.stop_reason is None:
            await self.ctx.flush()
        log.info("job %s: training process exited with %d", self.job.id, result.returncode)
        return result

    async def _stop_when_asked(self) -> None:
        await self.ctx.stopping.wait()
        proc = self._process
        if proc is None or proc.returncode is not None or self._trained:
            return
        immediate = self.ctx.stop_reason == "lost"
        _kill_group(proc.pid, signal.SIGKILL if immediate else signal.SIGTERM)
        if immediate:
            return
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE_S)
        except TimeoutError:
            log.warning("training process %d ignored SIGTERM for %.0f s; killing it", proc.pid, KILL_GRACE_S)
            _kill_group(proc.pid, signal.SIGKILL)

    async def _reap(self) -> None:
        """Make sure no child outlives the run (the worker may be cancelled mid-run)."""
        proc = self._process
        if proc is not None and proc.returncode is None:
            _kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()


def _progress(event: dict[str, Any]) -> dict[str, Any]:
    progress = {key: event.get(key) for key in PROGRESS_KEYS if key in event}
    if event.get("event") == "start":
        progress["step"] = 0
    return progress


def exit_message(returncode: int, stderr_path: Path) -> str:
    """Why the child ended without an ``error`` event: its exit status, and for a plain exit the
    tail of its stderr (a crash before the event stream was up prints a traceback there; a
    killed process printed nothing about why it died)."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        message = f"training process was killed by signal {number} ({name})"
        return message + " — out of memory?" if number == signal.SIGKILL else message
    tail = _tail(stderr_path)
    message = f"training process exited with status {returncode}"
    return f"{message}: {tail}" if tail else message


def _tail(path: Path, lines: int = 2, limit: int = 500) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    # Progress bars redraw with carriage returns; each redraw counts as a line.
    kept = [s.strip() for s in text.replace("\r", "\n").split("\n") if s.strip()][-lines:]
    return " | ".join(kept)[-limit:]


def _event(line: bytes) -> dict[str, Any] | None:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        log.debug("training process printed a non-event line: %r", line[:200])
        return None
    return event if isinstance(event, dict) else None


def _kill_group(pid: int, sig: signal.Signals) -> None:
    # The child leads its own session: signal the group, so anything it forked goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
