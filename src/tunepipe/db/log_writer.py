"""The request-log writer: handlers spool and enqueue, one task drains the queue in batches.

Invariants:
* A handler never waits on the database. With a spool (:mod:`tunepipe.db.spool`) it appends
  the record there before its call is answered, on the event loop and without fsync, so a
  process that dies loses no answered call; the spool's cursor moves once the record's batch
  commits, and the next start writes whatever a dead process left behind. A record that finds
  the queue full waits for nothing: it is on disk, and once the queue is drained the writer
  reads it back from there (in order), so memory stays bounded through a database outage.
  Without a spool a handler waits while the queue is full (back-pressure), and a record still
  without room after ``enqueue_timeout_s`` is dropped, counted in :attr:`LogWriter.stats` and
  reported in the server log — never silently.
* SQL runs on one dedicated thread, so batches are written in order and the event loop keeps
  serving. Bodies are compressed just before, by the writer task on the event loop, a slice of
  records at a time between requests: zlib releases the GIL on every call, and on the writer
  thread each release meant waiting to take the GIL back from the request thread, so under
  sustained load the writer fell behind (docs/performance.md). The spool keeps bodies as JSON
  text for the same reason: compressing them is not the answer's job.
* The writer lingers up to ``linger_s`` after the first record of a batch so that batches fill
  even at low concurrency: a transaction per record costs more CPU than the proxied call itself
  (see docs/performance.md). :meth:`LogWriter.flush` and :meth:`LogWriter.close` cut the wait
  short, so a reader in this process never waits for the linger.
* :meth:`LogWriter.close` drains everything still queued before returning (graceful shutdown);
  what an unreachable database does not take within ``close_timeout_s`` stays in the spool.
* A batch that fails is retried with exponential back-off and jitter (the database may be
  restarting: hammering it helps nobody): with a spool for as long as it takes, without one
  ``retries`` times before it is dropped and counted; the failure is logged once per
  interval, not once per attempt. A retry, and a replayed spool, leave out the ids already
  stored (a commit whose answer was lost). A record the database rejects for its data is
  dropped alone, so it never takes the rest of its batch with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_not_exception_type,
    wait_exponential_jitter,
)

from tunepipe.db.log_rows import Compressed, compress_json, insert, prepare
from tunepipe.db.outage import Throttled, summary
from tunepipe.db.spool import Entry, Orphan, Position, Spool, claim_orphans
from tunepipe.domain.logs import LogRecord

log = logging.getLogger(__name__)

_STOP: Any = object()
_COMPRESS_SLICE = 32  # records compressed between two chances for requests to run (~0.3 ms)


@dataclass(slots=True)
class WriterStats:
    enqueued: int = 0
    written: int = 0
    dropped: int = 0
    failed_batches: int = 0
    waited_for_space: int = 0
    spooled: int = 0  # accepted while the queue was full: read back from the spool
    replayed: int = 0  # written from the spools of processes that had died


_Item = tuple[Entry, Position | None]  # a queued record and where the spool has it (if it does)


class LogWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        queue_size: int = 20_000,
        batch_size: int = 1_000,
        enqueue_timeout_s: float = 5.0,
        retries: int = 3,
        linger_s: float = 0.05,
        backoff_s: float = 0.5,
        backoff_max_s: float = 5.0,
        spool_dir: Path | None = None,
        close_timeout_s: float = 10.0,
        error_log_interval_s: float = 30.0,
        max_body_bytes: int | None = None,
    ) -> None:
        """``spool_dir``: spool every record there (module docstring). ``retries`` bounds the
        attempts at a batch only without a spool (with one, the spool holds the records until
        the database is back, or until ``close_timeout_s`` into :meth:`close`).
        ``max_body_bytes``: the largest request or response body a row keeps whole
        (:func:`truncated`)."""
        self._max_body_bytes = max_body_bytes
        self._engine = engine
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._enqueue_timeout_s = enqueue_timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._linger_s = linger_s
        self._hurry = asyncio.Event()  # ends a linger: set by flush(), close() and a full batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-writer")
        self._task: asyncio.Task[None] | None = None
        self._settled = 0  # records the writer has finished with (written or dropped)
        self._progress = asyncio.Event()
        self.stats = WriterStats()
        self._spool_dir = spool_dir
        self._spool: Spool | None = None
        self._orphans: list[Orphan] = []
        self._replayed = asyncio.Event()
        self._replayed.set()
        # Where the records the queue had no room for begin in the spool; read back from there
        # once the queue is empty, and every record submitted meanwhile goes there too (in order).
        self._backlog: Position | None = None
        self._before = Position(0, 0)  # the spool's end before the latest append
        self._marked = Position(0, 0)  # the spool's cursor: everything before it is committed
        self._gave_up = False  # close() ran out of time: what is left stays in the spool
        self._close_timeout_s = close_timeout_s
        self._deadline: float | None = None  # set by close()
        self._wake = threading.Event()  # cuts a back-off short when close() begins
        self._errors = Throttled(log, error_log_interval_s)
        self._spool_errors = Throttled(log, error_log_interval_s)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def spool(self) -> Spool | None:
        return self._spool

    def start(self, *, replay: bool = True) -> None:
        """Start writing; ``replay``: first write what dead processes left in the spool directory."""
        if self._spool_dir is not None:
            try:
                self._spool = Spool.create(self._spool_dir)
            except OSError as exc:  # a read-only home, say: serve on, with logs in memory only
                log.error("request-log spool unavailable (%s): logs are kept in memory only", exc)
            if self._spool is not None and replay:
                self._orphans = claim_orphans(self._spool_dir, exclude=self._spool.owner)
                if self._orphans:
                    self._replayed.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="log-writer")

    async def submit(self, record: LogRecord) -> bool:
        """Spool and queue a record. Without a spool, wait (back-pressure) while the queue is
        full. False if it was dropped."""
        try:
            item = prepare(record, self._max_body_bytes)
        except Exception:  # e.g. a body orjson cannot encode; the call must not fail for its log
            self.stats.dropped += 1
            log.exception("request log %s dropped: its bodies could not be encoded", record.id)
            return False
        position = self._append(item)
        if position is not None and (self._backlog is not None or self._queue.full()):
            if self._backlog is None:
                self._backlog = self._before
            self.stats.enqueued += 1
            self.stats.spooled += 1
            return True
        try:
            self._queue.put_nowait((item, position))
        except asyncio.QueueFull:
            self.stats.waited_for_space += 1
            try:
                await asyncio.wait_for(self._queue.put((item, position)), self._enqueue_timeout_s)
            except TimeoutError:
                self.stats.dropped += 1
                log.error(
                    "request log dropped: queue full for %.1fs (dropped so far: %d)",
                    self._enqueue_timeout_s,
                    self.stats.dropped,
                )
                return False
        self.stats.enqueued += 1
        if self._queue.qsize() >= self._batch_size:
            self._hurry.set()
        return True

    def _append(self, item: Entry) -> Position | None:
        """Append to the spool (no await: records reach it in the order they are queued)."""
        if self._spool is None:
            return None
        self._before = self._spool.end
        try:
            position = self._spool.append(item)
        except Exception as exc:  # a full disk, say: the record is kept in memory only
            self._spool_errors.error("request-log spool %s: append failed: %s", self._spool.directory, exc)
            return None
        self._spool_errors.recovered("request-log spool appends succeed again")
        return position

    async def _run(self) -> None:
        try:
            await self._replay_orphans()
        finally:
            self._replayed.set()
        stopping = False
        while True:
            if self._backlog is not None and self._queue.empty():
                await self._write_backlog()
                continue
            if stopping and self._queue.empty():
                break
            first = await self._queue.get()
            if first is _STOP:
                stopping = True
                continue
            await self._linger()
            # Cleared before draining (no await in between): a flush() from now on sets it again
            # and ends the next linger, so nothing it waits for can sit out a full linger.
            self._hurry.clear()
            batch = [first]
            while len(batch) < self._batch_size:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        compressed = await self._compress([item for item, _ in batch])
        done = await loop.run_in_executor(self._executor, self._write_with_retry, compressed, False)
        if not done and self._spool is not None:  # given up at close: the spooled records wait
            self.stats.dropped += sum(1 for _, position in batch if position is None)
        positions = [position for _, position in batch if position is not None]
        if done and positions:
            self._mark(positions[-1])
        self._settled += len(batch)
        self._progress.set()

    async def _write_backlog(self) -> None:
        """Write the next batch of the records past a full queue, read back from the spool."""
        assert self._spool is not None and self._backlog is not None
        loop = asyncio.get_running_loop()
        end = self._spool.end
        read, after = await loop.run_in_executor(
            self._executor, self._spool.read, self._backlog, end, self._batch_size
        )
        compressed = await self._compress([item for item, _ in read])
        done = bool(read) and await loop.run_in_executor(
            self._executor, self._write_with_retry, compressed, False
        )
        if done:
            self._mark(after)
        if not read or not done:
            # Unreadable (never expected), or given up at close: it stays where it is, for the
            # next start; the records that remain are settled as far as this process goes.
            self._settled = self.stats.enqueued
            self._backlog = None
        else:
            self._settled += len(read)
            self._backlog = None if after >= self._spool.end else after
        self._progress.set()

    def _mark(self, position: Position) -> None:
        if self._spool is None or self._gave_up:
            return
        try:
            self._spool.mark(position)
        except OSError as exc:  # the next start may write these again; the ids keep them single
            self._spool_errors.error("request-log spool %s: marking failed: %s", self._spool.directory, exc)
            return
        self._marked = position

    async def _replay_orphans(self) -> None:
        """Write what dead processes spooled and never committed, oldest process first."""
        loop = asyncio.get_running_loop()
        for n, orphan in enumerate(self._orphans):
            written, complete = 0, False
            try:
                at = orphan.start()
                while True:
                    read, after = await loop.run_in_executor(
                        self._executor, orphan.read, at, self._batch_size
                    )
                    if not read:
                        complete = True
                        break
                    items = await self._compress([item for item, _ in read])
                    if not await loop.run_in_executor(self._executor, self._write_with_retry, items, True):
                        break
                    orphan.mark(after)
                    at, written = after, written + len(read)
                    self.stats.replayed += len(read)
            except Exception:  # the spool stays for the next start; this process serves on
                log.exception("replaying the request-log spool %s failed", orphan.owner)
            finally:
                orphan.release(remove=complete)
            if written or not complete:
                log.warning(
                    "request-log spool %s of a process that exited: %d records written%s",
                    orphan.owner,
                    written,
                    "" if complete else "; the rest stays for the next start",
                )
            if not complete:
                for rest in self._orphans[n + 1 :]:
                    rest.release(remove=False)
                break
        self._orphans = []

    async def _compress(self, batch: list[Entry]) -> list[Compressed]:
        """Compress the batch's bodies, yielding to requests after every slice: on the event loop,
        not the writer thread, where each of zlib's GIL releases meant waiting to take it back."""
        out: list[Compressed] = []
        for n, (record, raw_request, raw_response) in enumerate(batch):
            if n and n % _COMPRESS_SLICE == 0:
                await asyncio.sleep(0)
            try:
                request = compress_json(raw_request, self._max_body_bytes)
                response = compress_json(raw_response, self._max_body_bytes)
            except Exception:  # never expected: submit() encoded them already
                self.stats.dropped += 1
                log.exception("request log %s dropped: its bodies could not be compressed", record.id)
                continue
            out.append(Compressed(record, request, response))
        return out

    async def _linger(self) -> None:
        """Give the batch that ``first`` opened time to fill, unless it is due already."""
        if self._linger_s <= 0 or self._hurry.is_set() or self._queue.qsize() + 1 >= self._batch_size:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._linger_s):
                await self._hurry.wait()

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every record queued before this call has been written (or dropped), and
        the spools of dead processes with them."""
        target = self.stats.enqueued
        if self._settled < target:
            self._hurry.set()
        async with asyncio.timeout(timeout_s):
            await self._replayed.wait()
            while self._settled < target:
                self._progress.clear()
                if self._settled >= target:
                    return
                await self._progress.wait()

    def _write(self, batch: list[Compressed], skip_stored: bool) -> None:
        with self._engine.begin() as conn:
            insert(conn, batch, skip_stored=skip_stored)

    def _stop(self, state: RetryCallState) -> bool:
        if self._spool is None:
            return state.attempt_number >= self._retries
        # Spooled, the records are safe: keep trying until the database is back, or until
        # close() runs out of time (then they wait in the spool for the next start).
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _sleep(self, seconds: float) -> None:
        if self._deadline is None:
            self._wake.wait(seconds)  # close() cuts it short
        else:
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))

    def _write_with_retry(self, batch: list[Compressed], skip_stored: bool) -> bool:
        """Write ``batch``; False when given up on (without a spool its records are dropped).

        ``skip_stored``: leave out records whose id is stored already (a spool replayed after a
        crash; a retry after a commit whose answer was lost)."""
        if self._gave_up:
            return False
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            self._write(batch, skip_stored or attempts > 1)

        retrying = Retrying(
            stop=self._stop,
            wait=wait_exponential_jitter(
                multiplier=self._backoff_s, max=self._backoff_max_s, jitter=self._backoff_s
            ),
            # The data, not the database, is at fault: retrying cannot help (below).
            retry=retry_if_not_exception_type((IntegrityError, DataError)),
            before_sleep=lambda state: self._note_failure(state, len(batch)),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            retrying(attempt)
        except (IntegrityError, DataError) as exc:
            # Project deleted meanwhile, a value out of range: write the records one by one and
            # lose only the bad ones rather than the whole batch.
            self.stats.failed_batches += 1
            if len(batch) == 1:
                self.stats.dropped += 1
                log.error("request log %s rejected by the database, dropped: %s", batch[0].record.id, exc)
                return True
            log.warning("request-log batch of %d rejected; writing its records one by one", len(batch))
            written = [self._write_with_retry([item], True) for item in batch]  # every one, in order
            return all(written)
        except Exception as exc:  # out of attempts, or out of time at close
            self.stats.failed_batches += 1
            if self._spool is None:
                self.stats.dropped += len(batch)
                log.error(
                    "request-log batch of %d dropped after %d attempts: %s",
                    len(batch),
                    attempts,
                    summary(exc),
                )
            else:
                self._gave_up = True
                log.error(
                    "request logs not written before shutdown (%s); they stay in the spool", summary(exc)
                )
            return False
        self._errors.recovered("request-log writes succeed again")
        self.stats.written += len(batch)
        return True

    def _note_failure(self, state: RetryCallState, size: int) -> None:
        self.stats.failed_batches += 1
        error = state.outcome.exception() if state.outcome is not None else None
        held = "in the spool" if self._spool is not None else "in memory"
        self._errors.error(
            "request-log batch of %d not written (%s); retrying with back-off, records kept %s",
            size,
            summary(error) if error is not None else "?",
            held,
        )

    async def close(self) -> None:
        """Write everything queued, then stop. An unreachable database is tried for
        ``close_timeout_s``; what it could not take stays in the spool for the next start."""
        if self._task is not None:
            self._deadline = time.monotonic() + self._close_timeout_s
            self._wake.set()
            self._hurry.set()
            await self._queue.put(_STOP)
            self._hurry.set()
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)
        if self._spool is not None:
            committed = not self._gave_up and self._marked == self._spool.end
            untouched = self._spool.end == Position(0, 0)
            if not (committed or untouched):
                log.error(
                    "request logs not yet in the database stay in the spool %s (%s); the next start "
                    "writes them",
                    self._spool.directory,
                    self._spool.owner,
                )
            self._spool.close(remove=committed or untouched)
            self._spool = None
