"""Serving registered base models in-process (``local:<name>``).

The engine — and torch with it — is only imported and started on the first local request, so a
gateway that only proxies stays light and starts fast. Registered models are looked up through a
short-lived cache (dropped on every change notice), and a name that is not registered is not
cached, so made-up names cannot push real ones out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from async_lru import alru_cache

from tunepipe.domain.base_models import RegisteredModel
from tunepipe.errors import NotFound
from tunepipe.providers.base import ChatProvider
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.local.registry import SCOPE, BaseModelService
from tunepipe.settings import Settings

if TYPE_CHECKING:
    from tunepipe.engine.engine import LocalEngine

MAX_CACHED = 1_000


class _NotRegistered(Exception):
    """Raised inside the cached lookup so that a miss is not cached."""


class LocalModels:
    def __init__(
        self, settings: Settings, registry: BaseModelService, feed: ChangeFeed | None = None
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._engine: LocalEngine | None = None
        self._lookup = alru_cache(maxsize=MAX_CACHED, ttl=settings.auth_cache_ttl_s)(self._load)
        if feed is not None:
            feed.subscribe(SCOPE, lambda _name: self._lookup.cache_clear())

    @property
    def registry(self) -> BaseModelService:
        return self._registry

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

    async def _load(self, name: str) -> RegisteredModel:
        model = await self._registry.find(name)
        if model is None:
            raise _NotRegistered
        return model

    async def find(self, name: str) -> RegisteredModel | None:
        try:
            return await self._lookup(name)
        except _NotRegistered:
            return None

    async def list_models(self) -> list[RegisteredModel]:
        return await self._registry.all()

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
