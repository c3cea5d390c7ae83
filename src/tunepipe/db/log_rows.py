"""A logged call as rows: its bodies as the JSON the row keeps (capped, with a marker when cut),
compressed; its fields clipped to their columns; a batch inserted in bulk, leaving out ids
already stored. What the writer (:mod:`tunepipe.db.log_writer`) and tests and benchmarks that
seed logs write with."""

from __future__ import annotations

import zlib
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, select

from tunepipe.db.bulk_insert import insert_rows
from tunepipe.db.schema import logged_call_bodies, logged_call_criteria, logged_call_metadata, logged_calls
from tunepipe.db.spool import Entry
from tunepipe.domain.logs import LogRecord

# How much of an over-long body its log row keeps, at most (the "head" of the marker below).
TRUNCATED_HEAD_BYTES = 64 * 1024


def truncated(raw: bytes, limit: int) -> bytes:
    """The JSON a log row keeps of a body over ``limit`` bytes: a marker with the body's size
    and its start, ``{"_truncated": true, "bytes": <size>, "head": "<start of the JSON text>"}``.
    It is an object, so every reader of logs takes it as it takes any body; it has no
    ``messages`` or ``choices``, so a dataset import skips the call as not a chat call."""
    head = raw[: min(limit, TRUNCATED_HEAD_BYTES)].decode("utf-8", "ignore")
    return orjson.dumps({"_truncated": True, "bytes": len(raw), "head": head})


def body_json(value: bytes | Any, limit: int | None = None) -> bytes | None:
    """``value`` (JSON bytes, or a value to encode) as the JSON a log row keeps: itself, or its
    :func:`truncated` marker when over ``limit`` bytes."""
    if value is None:
        return None
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return truncated(raw, limit) if limit is not None and len(raw) > limit else raw


def compress_json(value: bytes | Any, limit: int | None = None) -> bytes | None:
    """``value`` (JSON bytes, or a value to encode) compressed for a log row; one whose JSON is
    over ``limit`` bytes is stored as its :func:`truncated` marker."""
    raw = body_json(value, limit)
    if raw is None:
        return None
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


class Compressed(NamedTuple):
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
    insert(conn, [Compressed(r, compress_json(r.request), compress_json(r.response)) for r in records])


def insert(conn: Connection, records: list[Compressed], *, skip_stored: bool = False) -> None:
    if skip_stored:
        ids = [item.record.id for item in records]
        stored = set(conn.scalars(select(logged_calls.c.id).where(logged_calls.c.id.in_(ids))))
        records = [item for item in records if item.record.id not in stored]
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


def prepare(record: LogRecord, max_body_bytes: int | None = None) -> Entry:
    """``record`` with its bodies as the JSON its row keeps (:func:`body_json`), as the spool
    takes it."""
    return Entry(
        record, body_json(record.request, max_body_bytes), body_json(record.response, max_body_bytes)
    )
