"""Serving registered base models in-process (``local:<name>``).

The engine — and torch with it — is only imported and started on the first local request, so a
gateway that only proxies stays light and starts fast.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from tunepipe.db.base_models import BaseModel
from tunepipe.errors import NotFound
from tunepipe.providers.base import ChatProvider
from tunepipe.services.base_models import BaseModelService
from tunepipe.services.ttl_cache import TTLCache
from tunepipe.settings import Settings

if TYPE_CHECKING:
    from tunepipe.engine.engine import LocalEngine


class LocalModels:
    def __init__(self, settings: Settings, base_models: BaseModelService) -> None:
        self._settings = settings
        self._base_models = base_models
        self._engine: LocalEngine | None = None
        self._cache: TTLCache[str, BaseModel | None] = TTLCache(settings.auth_cache_ttl_s)

    @property
    def started(self) -> bool:
        return self._engine is not None

    def engine(self) -> LocalEngine:
        if self._engine is None:
            from tunepipe.engine.engine import LocalEngine

            self._engine = LocalEngine(
                memory_budget_bytes=int(self._settings.local_memory_budget_gb * 1e9),
                device=self._settings.local_device,
                max_batch=self._settings.local_max_batch,
                threads=self._settings.local_threads,
            )
        return self._engine

    def invalidate(self) -> None:
        self._cache.invalidate()

    async def find(self, name: str) -> BaseModel | None:
        return await self._cache.get(name, lambda: asyncio.to_thread(self._base_models.find_sync, name))

    async def list_models(self) -> list[BaseModel]:
        return await self._base_models.list()

    async def provider(self, name: str) -> ChatProvider:
        model = await self.find(name)
        if model is None:
            raise NotFound(f"The model `local:{name}` does not exist", param="model", code="model_not_found")
        from tunepipe.providers.local import LocalProvider

        adapter = None
        if model.kind == "lora":
            base = await self.find(model.base or "")
            if base is None:
                raise NotFound(f"The base model {model.base!r} of `local:{name}` is not registered")
            adapter, model = (name, Path(model.path)), base
        return LocalProvider(
            self.engine(),
            model_name=model.name,
            path=Path(model.path),
            adapter=adapter,
            display_name=f"local:{name}",
            default_max_tokens=self._settings.local_default_max_tokens,
        )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
