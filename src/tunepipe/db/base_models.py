"""The registry of base models the local engine can serve."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from tunepipe.db.schema import base_models
from tunepipe.domain.clock import now_ms
from tunepipe.errors import Conflict


@dataclass(frozen=True, slots=True)
class BaseModel:
    name: str
    source: str
    path: str
    kind: str
    created_at: int
    base: str | None = None


def add(
    engine: Engine, *, name: str, source: str, path: str, kind: str, base: str | None = None
) -> BaseModel:
    model = BaseModel(name=name, source=source, path=path, kind=kind, created_at=now_ms(), base=base)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(base_models).values(
                    name=name, source=source, path=path, kind=kind, base=base, created_at=model.created_at
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"A base model named {name!r} is already registered") from exc
    return model


def list_all(engine: Engine) -> list[BaseModel]:
    with engine.connect() as conn:
        rows = conn.execute(select(base_models).order_by(base_models.c.created_at)).all()
    return [BaseModel(r.name, r.source, r.path, r.kind, r.created_at, r.base) for r in rows]


def find(engine: Engine, name: str) -> BaseModel | None:
    with engine.connect() as conn:
        r = conn.execute(select(base_models).where(base_models.c.name == name)).first()
    return BaseModel(r.name, r.source, r.path, r.kind, r.created_at, r.base) if r else None


def remove(engine: Engine, name: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(delete(base_models).where(base_models.c.name == name)).rowcount > 0
