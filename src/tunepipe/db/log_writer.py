"""The request-log writer: handlers enqueue, one task drains the queue in batches.

Invariants:
* A handler never waits on the database. It waits only when the queue is full
  (back-pressure), and if the queue stays full past ``enqueue_timeout_s`` the record is
  dropped, counted in :attr:`LogWriter.stats` and reported in the server log — never silently.
* SQL runs on one dedicated thread, so batches are written in order and the event loop keeps
  serving. Bodies are compressed just before, by the writer task on the event loop, a slice of
  records at a time between requests: zlib releases the GIL on every call, and on the writer
  thread each release meant waiting to take the GIL back from the request thread, so under
  sustained load the writer fell behind (docs/performance.md).
* The writer lingers up to ``linger_s`` after the first record of a batch so that batches fill
  even at low concurrency: a transaction per record costs more CPU than the proxied call itself
  (see docs/performance.md). :meth:`LogWriter.flush` and :meth:`LogWriter.close` cut the wait
  short, so a reader in this process never waits for the linger.
* :meth:`LogWriter.close` drains everything still queued before returning (graceful shutdown).
* A batch that fails is retried with exponential back-off and jitter (the database may be
  restarting: hammering it helps nobody), then dropped and counted; a record the database
  rejects for its data is dropped alone, so it never takes the rest of its batch with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from tunepipe.db.bulk_insert import insert_rows
from tunepipe.db.schema import logged_call_bodies, logged_call_criteria, logged_call_metadata, logged_calls
from tunepipe.domain.logs import LogRecord

log = logging.getLogger(__name__)

_STOP: Any = object()
_COMPRESS_SLICE = 32  # records compressed between two chances for requests to run (~0.3 ms)


def compress_json(value: bytes | Any) -> bytes | None:
    if value is None:
        return None
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    # A window no larger than the payload compresses exactly as well, and zlib sets it up far
    # faster: for a typical 300-byte body the default 32 KiB window costs 3x the compression.
    # Any window size decompresses with the default settings.
    wbits = min(15, max(9, (len(raw) - 1).bit_length()))
    return zlib.compress(raw, 1, wbits)


def decompress_json(blob: bytes | None) -> Any:
    return None if blob is None else orjson.loads(zlib.decompress(blob))


def _length(column: Any) -> int | None:
    length = getattr(column.type, "length", None)
    return length if isinstance(length, int) else None


_INT_MAX = 2**31 - 1  # `Integer` columns are 32-bit on Postgres
_MODEL_LEN = _length(logged_calls.c.model)
_FINISH_LEN = _length(logged_calls.c.finish_reason)
_COMPLETION_ID_LEN = _length(logged_calls.c.completion_id)
_REQUEST_ID_LEN = _length(logged_calls.c.request_id)
_KEY_LEN = _length(logged_call_metadata.c.key)
# Postgres indexes (project_id, key, value), and a btree entry must stay under ~2.7 kB.
MAX_METADATA_VALUE_BYTES = 1500


def _clip(value: str | None, size: int | None) -> str | None:
    """Fit a string to its column: at most ``size`` characters, and no NUL (Postgres refuses it)."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:size] if size is not None and len(value) > size else value


def _clip_bytes(value: str | None, size: int) -> str | None:
    if value is None or len(value) * 4 <= size:  # UTF-8 takes at most 4 bytes a character
        return value
    raw = value.encode()
    return value if len(raw) <= size else raw[:size].decode("utf-8", "ignore")


def _int32(value: int | None) -> int | None:
    return value if value is None or -_INT_MAX - 1 <= value <= _INT_MAX else None


class _Compressed(NamedTuple):
    """A record with its bodies compressed, ready for its rows to be built."""

    record: LogRecord
    request: bytes | None
    response: bytes | None


def write_records(conn: Connection, records: list[LogRecord]) -> None:
    """Insert a batch of records.

    Values that do not fit their column (caller-chosen: a long model name, an absurd token
    count) are clipped or left out, so every backend stores the call as SQLite would rather
    than Postgres refusing it.
    """
    _insert(conn, [_Compressed(r, compress_json(r.request), compress_json(r.response)) for r in records])


def _insert(conn: Connection, records: list[_Compressed]) -> None:
    calls: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    judged: list[dict[str, Any]] = []
    for r, request, response in records:
        calls.append(
            {
                "id": r.id,
                "project_id": r.project_id,
                "requested_at": r.requested_at,
                "received_at": r.received_at,
                "duration_ms": _int32(r.received_at - r.requested_at) if r.received_at is not None else None,
                "model": _clip(r.model, _MODEL_LEN),
                "status_code": _int32(r.status_code),
                "error_message": _clip(r.error_message, None),
                "input_tokens": _int32(r.input_tokens),
                "output_tokens": _int32(r.output_tokens),
                "cost": r.cost,
                "finish_reason": _clip(r.finish_reason, _FINISH_LEN),
                "completion_id": _clip(r.completion_id, _COMPLETION_ID_LEN),
                "cache_hit": r.cache_hit,
                "source": r.source,
                "streamed": r.streamed,
                "parent_id": r.parent_id,
                "answered_by": _clip(r.answered_by, _MODEL_LEN),
                "attempts": len(r.attempts) or None,
                "request_id": _clip(r.request_id, _REQUEST_ID_LEN),
                "endpoint": r.endpoint,
            }
        )
        bodies.append(
            {
                "call_id": r.id,
                "request": request,
                "response": response,
                "attempts": compress_json(r.attempts) if r.attempts else None,
            }
        )
        labels = {
            _clip(k, _KEY_LEN): _clip_bytes(_clip(v, None), MAX_METADATA_VALUE_BYTES)
            for k, v in r.metadata.items()
        }
        meta.extend(
            {"call_id": r.id, "key": k, "project_id": r.project_id, "value": v} for k, v in labels.items()
        )
        judged.extend(
            {
                "call_id": r.id,
                "choice_index": index,
                "criterion": result.name,
                "project_id": r.project_id,
                "version": result.version,
                "outcome": result.outcome,
                "score": result.score,
                "explanation": _clip(result.explanation, None),
                "error_code": _int32(result.error_code),
                "error_message": _clip(result.error_message, None),
            }
            for index, result in r.criteria
        )
    # Multi-row statements, not executemany: see db/bulk_insert.py.
    insert_rows(conn, logged_calls, calls)
    insert_rows(conn, logged_call_bodies, bodies)
    insert_rows(conn, logged_call_metadata, meta)
    insert_rows(conn, logged_call_criteria, judged)


@dataclass(slots=True)
class WriterStats:
    enqueued: int = 0
    written: int = 0
    dropped: int = 0
    failed_batches: int = 0
    waited_for_space: int = 0


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
    ) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[LogRecord] = asyncio.Queue(maxsize=queue_size)
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

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="log-writer")

    async def submit(self, record: LogRecord) -> bool:
        """Queue a record; wait (back-pressure) if the queue is full. False if it was dropped."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.stats.waited_for_space += 1
            try:
                await asyncio.wait_for(self._queue.put(record), self._enqueue_timeout_s)
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

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                break
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
            compressed = await self._compress(batch)
            await loop.run_in_executor(self._executor, self._write_with_retry, compressed)
            self._settled += len(batch)
            self._progress.set()

    async def _compress(self, batch: list[LogRecord]) -> list[_Compressed]:
        """Compress the batch's bodies, yielding to requests after every slice."""
        out: list[_Compressed] = []
        for n, record in enumerate(batch):
            if n and n % _COMPRESS_SLICE == 0:
                await asyncio.sleep(0)
            try:
                out.append(_Compressed(record, compress_json(record.request), compress_json(record.response)))
            except Exception:  # e.g. a body orjson cannot encode; the writer task must live on
                self.stats.dropped += 1
                log.exception("request log %s dropped: its bodies could not be compressed", record.id)
        return out

    async def _linger(self) -> None:
        """Give the batch that ``first`` opened time to fill, unless it is due already."""
        if self._linger_s <= 0 or self._hurry.is_set() or self._queue.qsize() + 1 >= self._batch_size:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._linger_s):
                await self._hurry.wait()

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every record queued before this call has been written (or dropped)."""
        target = self.stats.enqueued
        if self._settled < target:
            self._hurry.set()
        async with asyncio.timeout(timeout_s):
            while self._settled < target:
                self._progress.clear()
                if self._settled >= target:
                    return
                await self._progress.wait()

    def _write(self, batch: list[_Compressed]) -> None:
        with self._engine.begin() as conn:
            _insert(conn, batch)

    def _write_with_retry(self, batch: list[_Compressed]) -> None:
        retrying = Retrying(
            stop=stop_after_attempt(self._retries),
            wait=wait_exponential_jitter(
                multiplier=self._backoff_s, max=self._backoff_max_s, jitter=self._backoff_s
            ),
            # The data, not the database, is at fault: retrying cannot help (below).
            retry=retry_if_not_exception_type((IntegrityError, DataError)),
            after=lambda state: self._note_failure(state, len(batch)),
            reraise=True,
        )
        try:
            retrying(self._write, batch)
        except (IntegrityError, DataError) as exc:
            # Project deleted meanwhile, a value out of range: write the records one by one and
            # lose only the bad ones rather than the whole batch.
            self.stats.failed_batches += 1
            if len(batch) == 1:
                self.stats.dropped += 1
                log.error("request log %s rejected by the database, dropped: %s", batch[0].record.id, exc)
                return
            log.warning("request-log batch of %d rejected; writing its records one by one", len(batch))
            for item in batch:
                self._write_with_retry([item])
            return
        except Exception:  # every attempt failed (each is logged by _note_failure)
            self.stats.dropped += len(batch)
            log.error("request-log batch of %d dropped after %d attempts", len(batch), self._retries)
            return
        self.stats.written += len(batch)

    def _note_failure(self, state: RetryCallState, size: int) -> None:
        self.stats.failed_batches += 1
        error = state.outcome.exception() if state.outcome is not None else None
        log.error(
            "request-log batch of %d failed (attempt %d of %d)",
            size,
            state.attempt_number,
            self._retries,
            exc_info=(type(error), error, error.__traceback__) if error is not None else None,
        )

    async def close(self) -> None:
        """Write everything queued, then stop."""
        if self._task is not None:
            await self._queue.put(_STOP)
            self._hurry.set()
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)
