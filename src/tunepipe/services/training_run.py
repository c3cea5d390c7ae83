"""One claimed ``train`` job, run to its end: the job directory, the training child process, and
what the job and its fine-tune become.

The trainer runs as a child process (``python -m tunepipe.training <job_dir>``, its own session)
so that an out-of-memory kill or a crash in a native library never takes the worker down. The
parent talks to it only through the job directory and the child's stdout (one JSON event per
line, see :mod:`tunepipe.training`); progress events are copied to the fine-tune at most twice a
second, the last one always.

Beside the child, a watcher beats the job's heartbeat every ``job_heartbeat_s`` and stops the
child when the job is cancelled, when its fine-tune is deleted, or when another worker took the
job over (its heartbeat was found stale) — in that last case this run leaves the job and the
fine-tune alone, since they are no longer its own.

How a run ends:

- the child exits 0 with a ``done`` event: the adapter is stored (DB + ``TUNEPIPE_HOME``), the
  test set evaluated if an evaluator was given, the fine-tune DEPLOYED, the job DONE;
- the child was killed by a signal (an OOM kill, say) with attempts left: the job is requeued and
  the fine-tune goes back to QUEUED — another attempt may well fit;
- any other failure: job and fine-tune ERROR, with the child's ``error`` message or one made
  from its exit status and the tail of its stderr.

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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import Engine

from tunepipe.db import fine_tunes as repo
from tunepipe.db import jobs
from tunepipe.db.fine_tunes import FineTune
from tunepipe.db.jobs import Job
from tunepipe.domain.clock import now_ms
from tunepipe.domain.fine_tunes import FineTuneStatus
from tunepipe.services.fine_tune_files import store_adapter
from tunepipe.services.training_job_dir import JobFailed, write_job_dir
from tunepipe.settings import Settings
from tunepipe.training.config import ADAPTER_DIR, LOG_FILE, METRICS_FILE

log = logging.getLogger(__name__)

Evaluate = Callable[[FineTune], Awaitable[dict[str, Any]]]
"""Runs a deployed-to-be fine-tune on its test set; returns metrics merged into the model's."""

StopReason = Literal["cancelled", "deleted", "lost", "shutdown"]

STDERR_FILE = "stderr.log"
KILL_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
PROGRESS_INTERVAL_S = 0.5
LINE_LIMIT = 64 * 1024 * 1024  # one stdout event (the done event carries all metrics)
PROGRESS_KEYS = ("stage", "step", "total_steps", "loss", "eta_s", "epoch", "learning_rate", "tokens_per_s")


@dataclass(slots=True)
class ChildResult:
    returncode: int = 0
    metrics: dict[str, Any] | None = None  # from the ``done`` event
    error: str | None = None  # from the ``error`` event
    progress: dict[str, Any] | None = None  # the last progress written


class TrainingRun:
    """One attempt at one claimed job; :meth:`run` settles the job before it returns."""

    def __init__(
        self, settings: Settings, engine: Engine, job: Job, worker_id: str, evaluate: Evaluate | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.job = job
        self.worker_id = worker_id
        self.evaluate = evaluate
        self.home = settings.home_dir
        self.job_dir = self.home / "jobs" / f"{job.id}-{job.attempts}"
        self._process: asyncio.subprocess.Process | None = None
        self._stop: StopReason | None = None
        self._trained = False  # once the child succeeded, cancelling no longer stops the run
        self._killer: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The training child's pid while it runs."""
        proc = self._process
        return proc.pid if proc is not None and proc.returncode is None else None

    def stop(self, reason: StopReason) -> None:
        """Stop for ``reason``: the child gets SIGTERM (SIGKILL after a grace period, at once when
        the job is no longer this run's) and :meth:`run` settles the job as the reason says."""
        if self._stop is None:
            self._stop = reason
        self._signal_child(immediate=reason in ("lost", "deleted"))

    async def run(self) -> None:
        watcher = asyncio.create_task(self._watch(), name=f"job-watch-{self.job.id}")
        try:
            await self._run()
        except asyncio.CancelledError:  # the worker was cancelled: hand the job back
            await self._reap()
            try:
                await asyncio.to_thread(self._release, "worker shut down")
            except Exception:
                log.exception("job %s: handing it back failed; it will be recovered as stale", self.job.id)
            raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await self._reap()

    def fail(self, message: str) -> None:
        """End the job ERROR and its fine-tune ERROR with ``message`` (if the job is still ours)."""
        if jobs.finish(self.engine, self.job.id, self.worker_id, jobs.ERROR, message):
            repo.update_fine_tune(
                self.engine, self.job.subject_id, status=FineTuneStatus.ERROR.value, error_message=message
            )

    # The run, step by step

    async def _run(self) -> None:
        ft = await asyncio.to_thread(repo.get_by_id, self.engine, self.job.subject_id)
        if ft is None:
            await asyncio.to_thread(self._finish, jobs.ERROR, "model deleted")
            return
        await asyncio.to_thread(self._mark_training, ft)
        try:
            await asyncio.to_thread(
                write_job_dir, self.engine, self.home, ft, self.job_dir, device=self.settings.training_device
            )
        except JobFailed as exc:
            log.warning("job %s (fine-tune %s) failed: %s", self.job.id, ft.id, exc)
            await asyncio.to_thread(self.fail, str(exc))
            return
        result = await self._train() if self._stop is None else None
        if self._stop is not None or result is None:
            await asyncio.to_thread(self._settle_stop)
        elif result.returncode == 0 and result.metrics is not None:
            self._trained = True
            await self._succeed(result)
        else:
            await asyncio.to_thread(self._crashed, result)

    def _mark_training(self, ft: FineTune) -> None:
        changes: dict[str, Any] = {
            "status": FineTuneStatus.TRAINING.value,
            "error_message": None,
            "progress": {"stage": "preparing", "attempt": self.job.attempts},
        }
        if ft.training_started_at is None:
            changes["training_started_at"] = now_ms()
        repo.update_fine_tune(self.engine, ft.id, **changes)

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
        log.info("job %s attempt %d: training process %d started", self.job.id, self.job.attempts, proc.pid)
        if self._stop is not None:  # stopped while the process was starting
            self._signal_child(immediate=self._stop in ("lost", "deleted"))
        result = ChildResult()
        pending: dict[str, Any] | None = None
        written_at = 0.0
        assert proc.stdout is not None
        async for line in proc.stdout:
            event = _event(line)
            if event is None:
                continue
            kind = event.get("event")
            if kind in ("start", "progress"):
                pending = self._progress(event)
                if time.monotonic() - written_at >= PROGRESS_INTERVAL_S:
                    await asyncio.to_thread(self._write_progress, pending)
                    result.progress, pending, written_at = pending, None, time.monotonic()
            elif kind == "done":
                result.metrics = event.get("metrics") or {}
            elif kind == "error":
                result.error = str(event.get("message") or "training failed")
        result.returncode = await proc.wait()
        if pending is not None and self._stop is None:
            await asyncio.to_thread(self._write_progress, pending)
            result.progress = pending
        log.info("job %s: training process exited with %d", self.job.id, result.returncode)
        return result

    def _progress(self, event: dict[str, Any]) -> dict[str, Any]:
        progress = {key: event.get(key) for key in PROGRESS_KEYS if key in event}
        if event.get("event") == "start":
            progress["step"] = 0
        progress["attempt"] = self.job.attempts
        return progress

    def _write_progress(self, progress: dict[str, Any]) -> None:
        repo.update_fine_tune(self.engine, self.job.subject_id, progress=progress)

    async def _succeed(self, result: ChildResult) -> None:
        ft = await asyncio.to_thread(self._store_adapter)
        if ft is None:
            return
        metrics = dict(result.metrics or {})
        last = {k: v for k, v in (result.progress or {}).items() if k != "stage"}
        if self.evaluate is not None:
            evaluating = {**last, "stage": "evaluating"}
            await asyncio.to_thread(self._write_progress, evaluating)
            try:
                metrics.update(await self.evaluate(ft))
            except Exception as exc:  # the model is trained; a failed evaluation does not undo that
                log.exception("fine-tune %s: evaluating the test set failed", ft.id)
                metrics["test_set_error"] = str(exc) or type(exc).__name__
        if self._stop in ("lost", "deleted"):
            await asyncio.to_thread(self._settle_stop)
            return
        await asyncio.to_thread(self._deploy, metrics, {**last, "stage": "done"})

    def _store_adapter(self) -> FineTune | None:
        """Keep the trained adapter (with the run's log and metrics inside, so a download carries
        them); the reloaded fine-tune, or None when the job is no longer this run's to finish."""
        if not jobs.heartbeat(self.engine, self.job.id, self.worker_id):
            self._stop = "lost"
            self._settle_stop()
            return None
        if repo.get_by_id(self.engine, self.job.subject_id) is None:
            self._finish(jobs.CANCELLED, "model deleted")
            return None
        adapter = self.job_dir / ADAPTER_DIR
        for name in (METRICS_FILE, LOG_FILE):
            if (self.job_dir / name).is_file():
                shutil.copyfile(self.job_dir / name, adapter / name)
        store_adapter(self.engine, self.home, self.job.subject_id, adapter)
        return repo.get_by_id(self.engine, self.job.subject_id)

    def _deploy(self, metrics: dict[str, Any], progress: dict[str, Any]) -> None:
        repo.update_fine_tune(
            self.engine,
            self.job.subject_id,
            status=FineTuneStatus.DEPLOYED.value,
            error_message=None,
            metrics=metrics,
            progress=progress,
            training_finished_at=now_ms(),
        )
        if not self._finish(jobs.DONE):
            log.warning("job %s was taken away before it could be marked done", self.job.id)
        shutil.rmtree(self.job_dir, ignore_errors=True)
        log.info("fine-tune %s deployed (job %s)", self.job.subject_id, self.job.id)

    def _crashed(self, result: ChildResult) -> None:
        message = result.error or exit_message(result.returncode, self.job_dir / STDERR_FILE)
        attempt, allowed = self.job.attempts, self.job.max_attempts
        if result.returncode < 0 and attempt < allowed:
            log.warning("job %s attempt %d/%d failed, retrying: %s", self.job.id, attempt, allowed, message)
            if jobs.requeue(self.engine, self.job.id, self.worker_id, message):
                retry = {"stage": "queued", "attempt": attempt, "retry": attempt + 1, "message": message}
                repo.update_fine_tune(
                    self.engine, self.job.subject_id, status=FineTuneStatus.QUEUED.value, progress=retry
                )
            return
        log.warning(
            "job %s failed (attempt %d/%d): %s; its directory is kept: %s",
            self.job.id,
            attempt,
            allowed,
            message,
            self.job_dir,
        )
        self.fail(message)

    def _settle_stop(self) -> None:
        reason = self._stop
        if reason == "lost":
            log.warning("job %s was taken over by another worker; this run stops", self.job.id)
        elif reason == "cancelled":
            if self._finish(jobs.CANCELLED, "cancelled"):
                repo.update_fine_tune(
                    self.engine,
                    self.job.subject_id,
                    status=FineTuneStatus.ERROR.value,
                    error_message="cancelled",
                )
        elif reason == "deleted":
            self._finish(jobs.CANCELLED, "model deleted")
        elif reason == "shutdown":
            self._release("worker shut down")

    def _release(self, message: str) -> None:
        """Hand the job back (the attempt is not spent) and put the fine-tune back in the queue."""
        if jobs.release(self.engine, self.job.id, self.worker_id, message):
            progress = {"stage": "queued", "attempt": self.job.attempts, "message": message}
            repo.update_fine_tune(
                self.engine, self.job.subject_id, status=FineTuneStatus.QUEUED.value, progress=progress
            )

    def _finish(self, status: str, message: str | None = None) -> bool:
        return jobs.finish(self.engine, self.job.id, self.worker_id, status, message)

    # The watcher and the child's end

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_s)
            try:
                await self._tick()
            except Exception:  # a missed beat is survivable; a dead watcher would stop them all
                log.exception("job %s: heartbeat failed", self.job.id)

    async def _tick(self) -> None:
        if not await asyncio.to_thread(jobs.heartbeat, self.engine, self.job.id, self.worker_id):
            if self._stop is None:
                self.stop("lost")
            return
        if self._stop is not None or self._trained:
            return
        if await asyncio.to_thread(jobs.cancel_requested, self.engine, self.job.id):
            log.info("job %s: cancel requested", self.job.id)
            self.stop("cancelled")
        elif await asyncio.to_thread(repo.get_by_id, self.engine, self.job.subject_id) is None:
            log.info("job %s: its fine-tune was deleted", self.job.id)
            self.stop("deleted")

    def _signal_child(self, *, immediate: bool) -> None:
        proc = self._process
        if proc is None or proc.returncode is not None:
            return
        _kill_group(proc.pid, signal.SIGKILL if immediate else signal.SIGTERM)
        if not immediate and self._killer is None:
            self._killer = asyncio.create_task(self._kill_after(proc, KILL_GRACE_S))

    async def _kill_after(self, proc: asyncio.subprocess.Process, grace_s: float) -> None:
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            log.warning("training process %d ignored SIGTERM for %.0f s; killing it", proc.pid, grace_s)
            _kill_group(proc.pid, signal.SIGKILL)

    async def _reap(self) -> None:
        """Make sure no child outlives the run."""
        proc = self._process
        if proc is not None and proc.returncode is None:
            _kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()
        if self._killer is not None:
            self._killer.cancel()
            await asyncio.gather(self._killer, return_exceptions=True)


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
