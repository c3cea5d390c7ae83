"""Reading and relabelling logged calls.

Filters on indexed columns and metadata run in SQL; "text contains" has to look inside the
compressed bodies, so it runs in Python over SQL-filtered pages (scan cost is bounded per page).
Pagination is by cursor on ``(requested_at, id)``, newest first, so pages stay stable while
new calls arrive.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Connection,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy.sql import Select

from tunepipe.db.log_rows import decompress_json
from tunepipe.db.schema import logged_call_bodies, logged_call_criteria, logged_call_metadata, logged_calls
from tunepipe.domain.criteria import CriterionResult
from tunepipe.domain.logs import JUDGE_SOURCE, LogFilter, LoggedCall

MAX_METADATA_KEY = 200  # the size of `logged_call_metadata.key`


def _where(project_id: str, f: LogFilter) -> list[Any]:
    c = logged_calls.c
    conds: list[Any] = [c.project_id == project_id]
    if f.since_ms is not None:
        conds.append(c.requested_at >= f.since_ms)
    if f.until_ms is not None:
        conds.append(c.requested_at < f.until_ms)
    if f.model is not None:
        conds.append(c.model == f.model)
    if f.status_code is not None:
        conds.append(c.status_code == f.status_code)
    if f.only_success:
        conds.append(c.status_code == 200)
    if f.completion_id is not None:
        conds.append(c.completion_id == f.completion_id)
    for key, value in f.metadata.items():
        m = logged_call_metadata.c
        conds.append(exists().where(m.call_id == c.id, m.key == key, m.value == value))
    for name, outcome in f.criteria.items():
        j = logged_call_criteria.c
        conds.append(exists().where(j.call_id == c.id, j.criterion == name, j.outcome == outcome))
    if f.source is not None:
        conds.append(c.source == f.source)
    if f.parent_id is not None:
        conds.append(c.parent_id == f.parent_id)
    if not f.judges:
        conds.append(c.source != JUDGE_SOURCE)
    return conds


def encode_cursor(requested_at: int, call_id: str) -> str:
    return base64.urlsafe_b64encode(f"{requested_at}:{call_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ``ValueError`` for a cursor this server did not make."""
    at, sep, call_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    if not sep or not call_id or "\x00" in call_id or abs(at_ms := int(at)) >= 2**63:
        raise ValueError("not a log cursor")
    return at_ms, call_id


def _page_query(
    project_id: str, f: LogFilter, after: tuple[int, str] | None, limit: int, *, newer: bool = False
) -> Select[Any]:
    c = logged_calls.c
    conds = _where(project_id, f)
    if after is not None:
        at, call_id = after
        # The plain bound on `requested_at` lets the index on (project_id, requested_at) bound the
        # scan; the OR breaks ties by id.
        if newer:
            conds += [
                c.requested_at >= at,
                or_(c.requested_at > at, and_(c.requested_at == at, c.id > call_id)),
            ]
        else:
            conds += [
                c.requested_at <= at,
                or_(c.requested_at < at, and_(c.requested_at == at, c.id < call_id)),
            ]
    order = (c.requested_at.asc(), c.id.asc()) if newer else (c.requested_at.desc(), c.id.desc())
    return select(logged_calls).where(*conds).order_by(*order).limit(limit)


def _metadata_for(conn: Any, ids: list[str]) -> dict[str, dict[str, str | None]]:
    out: dict[str, dict[str, str | None]] = {i: {} for i in ids}
    if ids:
        m = logged_call_metadata.c
        for row in conn.execute(select(m.call_id, m.key, m.value).where(m.call_id.in_(ids))):
            out[row.call_id][row.key] = row.value
    return out


def _criteria_for(conn: Any, ids: list[str]) -> dict[str, dict[int, dict[str, Any]]]:
    """Criteria results of calls, as ``criteria_results`` shows them per choice."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    if ids:
        j = logged_call_criteria.c
        rows = conn.execute(select(logged_call_criteria).where(j.call_id.in_(ids)))
        for r in rows:
            result = CriterionResult(
                name=r.criterion,
                version=r.version,
                status="error" if r.outcome == "error" else "success",
                score=r.score,
                explanation=r.explanation,
                error_code=r.error_code,
                error_message=r.error_message,
            )
            out.setdefault(r.call_id, {}).setdefault(r.choice_index, {})[r.criterion] = result.wire()
    return out


def _bodies_for(conn: Any, ids: list[str]) -> dict[str, tuple[Any, Any, Any]]:
    if not ids:
        return {}
    b = logged_call_bodies.c
    rows = conn.execute(select(b.call_id, b.request, b.response, b.attempts).where(b.call_id.in_(ids)))
    return {
        r.call_id: (decompress_json(r.request), decompress_json(r.response), decompress_json(r.attempts))
        for r in rows
    }


def _to_call(
    row: Any,
    meta: dict[str, str | None],
    bodies: tuple[Any, Any, Any] | None,
    criteria: dict[int, dict[str, Any]] | None = None,
) -> LoggedCall:
    return LoggedCall(
        id=row.id,
        requested_at=row.requested_at,
        received_at=row.received_at,
        duration_ms=row.duration_ms,
        model=row.model,
        status_code=row.status_code,
        error_message=row.error_message,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cost=row.cost,
        finish_reason=row.finish_reason,
        completion_id=row.completion_id,
        cache_hit=row.cache_hit,
        source=row.source,
        streamed=row.streamed,
        metadata=meta,
        request=bodies[0] if bodies else None,
        response=bodies[1] if bodies else None,
        parent_id=row.parent_id,
        criteria=criteria or {},
        answered_by=row.answered_by,
        attempt_count=row.attempts,
        attempts=bodies[2] if bodies else None,
        request_id=row.request_id,
        endpoint=row.endpoint,
    )


def _contains(bodies: tuple[Any, Any, Any] | None, needle: str) -> bool:
    """Case-insensitive text search in the request and response bodies."""
    request, response, _ = bodies if bodies is not None else (None, None, None)
    hay = orjson.dumps([request, response]).decode()
    return needle.lower() in hay.lower()


def list_calls(
    conn: Connection,
    project_id: str,
    f: LogFilter,
    *,
    after: tuple[int, str] | None = None,
    limit: int = 50,
    with_bodies: bool = False,
    newer: bool = False,
) -> tuple[list[LoggedCall], str | None]:
    """One page of calls, newest first, and the cursor of the next page (None when this page
    is the last: one match beyond ``limit`` is looked for, so a full last page says so).

    ``newer`` walks the other way: the calls just after ``after``, oldest first (a page back
    towards the newest, which the caller reverses)."""
    need_bodies = with_bodies or f.contains is not None
    wanted = limit + 1
    found: list[LoggedCall] = []
    while len(found) < wanted:
        # Over-fetch when filtering by text, since some rows of each page will not match.
        size = wanted if not f.contains else wanted * 4
        page = conn.execute(_page_query(project_id, f, after, size, newer=newer)).all()
        if not page:
            break
        ids = [r.id for r in page]
        meta = _metadata_for(conn, ids)
        judged = _criteria_for(conn, ids)
        bodies = _bodies_for(conn, ids) if need_bodies else {}
        for row in page:
            after = (row.requested_at, row.id)
            call = _to_call(
                row, meta[row.id], bodies.get(row.id) if with_bodies else None, judged.get(row.id)
            )
            if f.contains is not None and not _contains(bodies.get(row.id), f.contains):
                continue
            found.append(call)
            if len(found) == wanted:
                break
    if len(found) < wanted:
        return found, None
    last = found[limit - 1]
    return found[:limit], encode_cursor(last.requested_at, last.id)


def get_call(conn: Connection, project_id: str, call_id: str) -> LoggedCall | None:
    row = conn.execute(
        select(logged_calls).where(logged_calls.c.project_id == project_id, logged_calls.c.id == call_id)
    ).first()
    return _in_full(conn, row) if row is not None else None


def _in_full(conn: Connection, row: Any) -> LoggedCall:
    """One call with its metadata, bodies and criteria results."""
    return _to_call(
        row,
        _metadata_for(conn, [row.id])[row.id],
        _bodies_for(conn, [row.id]).get(row.id),
        _criteria_for(conn, [row.id]).get(row.id),
    )


def latest_call(conn: Connection, project_id: str) -> LoggedCall | None:
    """The call the project's logs received last: ids are time-ordered from when a call reached
    the gateway (a reported call's ``requestedAt`` is the client's and may be older). A judge's
    call is part of the call it judged and is left out."""
    c = logged_calls.c
    row = conn.execute(
        select(logged_calls)
        .where(*_where(project_id, LogFilter(judges=False)))
        .order_by(c.id.desc())
        .limit(1)
    ).first()
    return _in_full(conn, row) if row is not None else None


def update_call_metadata(
    conn: Connection, project_id: str, call_id: str, changes: dict[str, str | None]
) -> bool:
    """Set (string) or delete (None) metadata keys of one call; False when the project has no
    such call."""
    c = logged_calls.c
    m = logged_call_metadata.c
    if conn.execute(select(c.id).where(c.project_id == project_id, c.id == call_id)).first() is None:
        return False
    if changes:
        conn.execute(delete(logged_call_metadata).where(m.call_id == call_id, m.key.in_(list(changes))))
    rows = [
        {"call_id": call_id, "key": k, "project_id": project_id, "value": v}
        for k, v in changes.items()
        if v is not None
    ]
    if rows:
        conn.execute(insert(logged_call_metadata), rows)
    return True


def update_metadata(
    conn: Connection, project_id: str, f: LogFilter, changes: dict[str, str | None], *, chunk: int = 500
) -> int:
    """Set (string) or delete (None) metadata keys on every matching call; return how many matched."""
    c = logged_calls.c
    m = logged_call_metadata.c
    ids = [r.id for r in conn.execute(select(c.id).where(*_where(project_id, f)))]
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        if changes:
            conn.execute(delete(logged_call_metadata).where(m.call_id.in_(part), m.key.in_(list(changes))))
        rows = [
            {"call_id": i, "key": k, "project_id": project_id, "value": v}
            for i in part
            for k, v in changes.items()
            if v is not None
        ]
        if rows:
            conn.execute(insert(logged_call_metadata), rows)
    return len(ids)


# --- Usage: requests, tokens, cost, cache hits and errors by time bucket and model -------------


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One model's calls in one time bucket (``bucket``: its index from the window's start)."""

    bucket: int
    model: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cost: float
    cache_hits: int
    errors: int


@dataclass(frozen=True, slots=True)
class StatusCount:
    """Calls that ended with one status (None: no answer at all), and their count."""

    status_code: int | None
    requests: int


def _is_error(status_code: int | None) -> bool:
    return status_code is None or status_code >= 400


def usage(
    conn: Connection, project_id: str, since_ms: int, until_ms: int, bucket_ms: int
) -> tuple[list[UsageRow], list[StatusCount]]:
    """The calls of ``[since_ms, until_ms)`` aggregated by bucket and model, and the failed ones
    by status, in one scan: SQL groups by bucket, model and status (the index on
    ``(project_id, requested_at)`` bounds it); the few groups are folded here. Judges' calls
    are left out as on Request Logs. Bucket numbers are integer divisions, the same on SQLite
    and PostgreSQL."""
    c = logged_calls.c
    conds = _where(project_id, LogFilter(since_ms=since_ms, until_ms=until_ms, judges=False))
    # Integers rendered inline, so that PostgreSQL sees one expression in SELECT and GROUP BY
    # (two bound parameters would be two expressions to it).
    start = literal_column(str(int(since_ms)), BigInteger)
    width = literal_column(str(int(bucket_ms)), BigInteger)
    bucket = ((c.requested_at - start) // width).label("bucket")
    query = (
        select(
            bucket,
            c.model,
            c.status_code,
            func.count().label("requests"),
            func.coalesce(func.sum(c.input_tokens), 0).label("input_tokens"),
            func.coalesce(func.sum(c.output_tokens), 0).label("output_tokens"),
            func.coalesce(func.sum(c.cost), 0.0).label("cost"),
            func.coalesce(func.sum(case((c.cache_hit.is_(True), 1), else_=0)), 0).label("cache_hits"),
        )
        .where(*conds)
        .group_by(bucket, c.model, c.status_code)
    )
    rows: dict[tuple[int, str | None], list[Any]] = {}
    statuses: dict[int | None, int] = {}
    for r in conn.execute(query):
        failed = _is_error(r.status_code)
        sums = rows.setdefault((int(r.bucket), r.model), [0, 0, 0, 0.0, 0, 0])
        for i, v in enumerate((r.requests, r.input_tokens, r.output_tokens, r.cost, r.cache_hits)):
            sums[i] += v
        if failed:
            sums[5] += r.requests
            statuses[r.status_code] = statuses.get(r.status_code, 0) + int(r.requests)
    by_bucket = [
        UsageRow(
            bucket=b,
            model=m,
            requests=int(v[0]),
            input_tokens=int(v[1]),
            output_tokens=int(v[2]),
            cost=float(v[3]),
            cache_hits=int(v[4]),
            errors=int(v[5]),
        )
        for (b, m), v in sorted(rows.items(), key=lambda item: (item[0][0], item[0][1] or ""))
    ]
    failures = [
        StatusCount(k, n) for k, n in sorted(statuses.items(), key=lambda i: (i[0] is None, i[0] or 0))
    ]
    return by_bucket, failures
