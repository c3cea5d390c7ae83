"""The request-log writer: handlers enqueue, one task drains the queue in batches.

Invariants:
* A handler never waits on the database. It waits only when the queue is full
  (back-pressure), and if the queue stays full past ``enqueue_timeout_s`` the record is
  dropped, counted in :attr:`LogWriter.stats` and reported in the server log — never silently.
* Encoding, compression and SQL run on one dedicated thread, so batches are written in order
  and the event loop keeps serving.
* :meth:`LogWriter.close` drains everything still queued before returning (graceful shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, insert

from tunepipe.db.schema import logged_call_bodies, logged_call_metadata, logged_calls

log = logging.getLogger(__name__)

_STOP: Any = object()


@dataclass(slots=True)
class LogRecord:
    """One logged call. ``request``/``response`` are JSON bytes as received, or JSON values."""

    id: str
    project_id: str
    requested_at: int
    received_at: int | None
    model: str | None
    status_code: int | None
    source: str
    request: bytes | Any = None
    response: bytes | Any = None
    error_message: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    finish_reason: str | None = None
    completion_id: str | None = None
    cache_hit: bool = False
    streamed: bool = False
    metadata: dict[str, str | None] = field(default_factory=dict)


def compress_json(value: bytes | Any) -> bytes | None:
    if value is None:
        return None
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return zlib.compress(raw, 1)


def decompress_json(blob: bytes | None) -> Any:
    return None if blob is None else orjson.loads(zlib.decompress(blob))


def write_records(engine: Engine, records: list[LogRecord]) -> None:
    """Insert a batch in one transaction (used by the writer and by ``/report``)."""
    calls: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    for r in records:
        calls.append(
            {
                "id": r.id,
                "project_id": r.project_id,
                "requested_at": r.requested_at,
                "received_at": r.received_at,
                "duration_ms": (r.received_at - r.requested_at) if r.received_at is not None else None,
                "model": r.model,
                "status_code": r.status_code,
                "error_message": r.error_message,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cost": r.cost,
                "finish_reason": r.finish_reason,
                "completion_id": r.completion_id,
                "cache_hit": r.cache_hit,
                "source": r.source,
                "streamed": r.streamed,
            }
        )
        bodies.append(
            {"call_id": r.id, "request": compress_json(r.request), "response": compress_json(r.response)}
        )
        meta.extend(
            {"call_id": r.id, "key": k, "project_id": r.project_id, "value": v} for k, v in r.metadata.items()
        )
    with engine.begin() as conn:
        conn.execute(insert(logged_calls), calls)
        conn.execute(insert(logged_call_bodies), bodies)
        if meta:
            conn.execute(insert(logged_call_metadata), meta)


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
    ) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[LogRecord] = asyncio.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._enqueue_timeout_s = enqueue_timeout_s
        self._retries = retries
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
        return True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                break
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
            await loop.run_in_executor(self._executor, self._write_with_retry, batch)
            self._settled += len(batch)
            self._progress.set()

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every record queued before this call has been written (or dropped)."""
        target = self.stats.enqueued
        async with asyncio.timeout(timeout_s):
            while self._settled < target:
                self._progress.clear()
                if self._settled >= target:
                    return
                await self._progress.wait()

    def _write_with_retry(self, batch: list[LogRecord]) -> None:
        for attempt in range(1, self._retries + 1):
            try:
                write_records(self._engine, batch)
            except Exception:
                log.exception("request-log batch of %d failed (attempt %d)", len(batch), attempt)
                self.stats.failed_batches += 1
                continue
            self.stats.written += len(batch)
            return
        self.stats.dropped += len(batch)
        log.error("request-log batch of %d dropped after %d attempts", len(batch), self._retries)

    async def close(self) -> None:
        """Write everything queued, then stop."""
        if self._task is not None:
            await self._queue.put(_STOP)
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)
