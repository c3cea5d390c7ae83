"""The feed of settings changes (``config_changes``): written in the transaction of the change,
read by every server process to drop what it cached (:mod:`tunepipe.services.changes`)."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from tunepipe.db.schema import config_changes
from tunepipe.domain.clock import now_ms


def record(conn: Connection, scope: str, key: str | None = None) -> None:
    conn.execute(insert(config_changes).values(scope=scope, key=key, at=now_ms()))


def since(conn: Connection, at_ms: int) -> list[tuple[int, str, str | None]]:
    """``(id, scope, key)`` of the changes recorded at or after ``at_ms``, oldest first."""
    c = config_changes.c
    rows = conn.execute(select(c.id, c.scope, c.key).where(c.at >= at_ms).order_by(c.id))
    return [(r.id, r.scope, r.key) for r in rows]


def prune(conn: Connection, before_ms: int) -> int:
    return int(conn.execute(delete(config_changes).where(config_changes.c.at < before_ms)).rowcount)
