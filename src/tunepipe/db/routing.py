"""A project's routing settings: default fallback chains (and, beside them, mixture-of-agents
configurations, :mod:`tunepipe.db.moa`)."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, delete, insert, select

from tunepipe.db.schema import fallback_chains
from tunepipe.domain.clock import now_ms
from tunepipe.domain.routing import FallbackChain


def list_chains(conn: Connection, project_id: str) -> dict[str, FallbackChain]:
    f = fallback_chains.c
    rows = conn.execute(select(fallback_chains).where(f.project_id == project_id).order_by(f.model)).all()
    return {r.model: FallbackChain(r.model, tuple(orjson.loads(r.fallbacks)), r.retries) for r in rows}


def set_chain(conn: Connection, project_id: str, chain: FallbackChain) -> None:
    f = fallback_chains.c
    conn.execute(delete(fallback_chains).where(f.project_id == project_id, f.model == chain.model))
    conn.execute(
        insert(fallback_chains).values(
            project_id=project_id,
            model=chain.model,
            fallbacks=orjson.dumps(list(chain.fallbacks)).decode(),
            retries=chain.retries,
            updated_at=now_ms(),
        )
    )


def delete_chain(conn: Connection, project_id: str, model: str) -> bool:
    f = fallback_chains.c
    return bool(
        conn.execute(delete(fallback_chains).where(f.project_id == project_id, f.model == model)).rowcount
    )
