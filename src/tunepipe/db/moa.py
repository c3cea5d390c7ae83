"""A project's mixture-of-agents configurations (``moa_configs``): one row per slug, the
configuration as JSON (:meth:`tunepipe.domain.moa.MoaConfig.as_json`), checked before it is
written and so trusted when read."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tunepipe.db.schema import moa_configs
from tunepipe.domain.clock import now_ms
from tunepipe.domain.ids import uuid7
from tunepipe.domain.moa import MoaConfig, ProjectMoa
from tunepipe.errors import Conflict

_c = moa_configs.c


def _row(r: Any) -> ProjectMoa:
    return ProjectMoa(
        id=r.id,
        project_id=r.project_id,
        slug=r.slug,
        config=MoaConfig.from_json(orjson.loads(r.config)),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _json(config: MoaConfig) -> str:
    return orjson.dumps(config.as_json()).decode()


def list_configs(conn: Connection, project_id: str) -> dict[str, ProjectMoa]:
    """The project's configurations by slug, in slug order."""
    rows = conn.execute(select(moa_configs).where(_c.project_id == project_id).order_by(_c.slug))
    return {r.slug: _row(r) for r in rows}


def get(conn: Connection, project_id: str, slug: str) -> ProjectMoa | None:
    r = conn.execute(select(moa_configs).where(_c.project_id == project_id, _c.slug == slug)).first()
    return _row(r) if r else None


def create(conn: Connection, project_id: str, slug: str, config: MoaConfig) -> ProjectMoa:
    """Raises :class:`Conflict` when the project has a configuration of that slug."""
    if get(conn, project_id, slug) is not None:
        raise _taken(slug)
    at = now_ms()
    made = ProjectMoa(uuid7(), project_id, slug, config, at, at)
    try:
        conn.execute(
            insert(moa_configs).values(
                id=made.id,
                project_id=project_id,
                slug=slug,
                config=_json(config),
                created_at=at,
                updated_at=at,
            )
        )
    except IntegrityError as exc:  # created by someone else since the check
        raise _taken(slug) from exc
    return made


def replace(conn: Connection, project_id: str, slug: str, config: MoaConfig) -> ProjectMoa | None:
    """The configuration of ``slug`` replaced (``None`` when there is none)."""
    found = get(conn, project_id, slug)
    if found is None:
        return None
    # Strictly later than before: the router's cache key (the route's identity) holds it.
    at = max(now_ms(), found.updated_at + 1)
    conn.execute(
        update(moa_configs)
        .where(_c.project_id == project_id, _c.slug == slug)
        .values(config=_json(config), updated_at=at)
    )
    return ProjectMoa(found.id, project_id, slug, config, found.created_at, at)


def remove(conn: Connection, project_id: str, slug: str) -> bool:
    return bool(
        conn.execute(delete(moa_configs).where(_c.project_id == project_id, _c.slug == slug)).rowcount
    )


def _taken(slug: str) -> Conflict:
    return Conflict(f"This project already has a mixture-of-agents configuration {slug!r}", param="slug")
