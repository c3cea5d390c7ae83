"""The response cache's table, when the database is the store: answers by key, with expiry."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tunepipe.db.schema import response_cache


def get(conn: Connection, key: str, now: int) -> bytes | None:
    r = response_cache.c
    value = conn.execute(select(r.response).where(r.key == key, r.expires_at > now)).scalar()
    return bytes(value) if value is not None else None


def put(
    conn: Connection, key: str, project_id: str, model: str, value: bytes, now: int, expires_at: int
) -> None:
    """Store or replace an answer (an upsert: two processes storing one key at once both win)."""
    insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    values = {"model": model, "response": value, "created_at": now, "expires_at": expires_at}
    statement = insert_(response_cache).values(key=key, project_id=project_id, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=[response_cache.c.key], set_=values))


def clear(conn: Connection, project_id: str, model: str | None) -> int:
    r = response_cache.c
    query = delete(response_cache).where(r.project_id == project_id)
    if model is not None:
        query = query.where(r.model == model)
    return int(conn.execute(query).rowcount)


def expire(conn: Connection, now: int, *, limit: int = 10_000) -> int:
    """Delete up to ``limit`` expired answers (a batch at a time, so no long write lock)."""
    r = response_cache.c
    keys = list(conn.execute(select(r.key).where(r.expires_at <= now).limit(limit)).scalars())
    if keys:
        conn.execute(delete(response_cache).where(r.key.in_(keys)))
    return len(keys)


def stats(conn: Connection, project_id: str, now: int) -> list[tuple[str, int, int]]:
    """Per model: (model, live answers, bytes stored)."""
    r = response_cache.c
    rows = conn.execute(
        select(r.model, func.count(), func.coalesce(func.sum(func.length(r.response)), 0))
        .where(r.project_id == project_id, r.expires_at > now)
        .group_by(r.model)
        .order_by(r.model)
    ).all()
    return [(m, int(n), int(size)) for m, n, size in rows]
