"""The registry of base models the local engine can serve (per installation, not per project)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from tunepipe.db.schema import base_models
from tunepipe.domain.base_models import RegisteredModel
from tunepipe.domain.clock import now_ms
from tunepipe.errors import Conflict


def _model(r: Any) -> RegisteredModel:
    return RegisteredModel(r.name, r.source, r.path, r.kind, r.created_at, r.base)


def add(
    conn: Connection, *, name: str, source: str, path: str, kind: str, base: str | None = None
) -> RegisteredModel:
    model = RegisteredModel(name=name, source=source, path=path, kind=kind, created_at=now_ms(), base=base)
    try:
        conn.execute(
            insert(base_models).values(
                name=name, source=source, path=path, kind=kind, base=base, created_at=model.created_at
            )
        )
    except IntegrityError as exc:
        raise Conflict(f"A base model named {name!r} is already registered") from exc
    return model


def list_all(conn: Connection) -> list[RegisteredModel]:
    return [_model(r) for r in conn.execute(select(base_models).order_by(base_models.c.created_at))]


def find(conn: Connection, name: str) -> RegisteredModel | None:
    r = conn.execute(select(base_models).where(base_models.c.name == name)).first()
    return _model(r) if r else None


def remove(conn: Connection, name: str) -> bool:
    return conn.execute(delete(base_models).where(base_models.c.name == name)).rowcount > 0
