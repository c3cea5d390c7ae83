"""Serving fine-tunes: ``openpipe:<slug>`` as a provider, its test set, and taking it down.

A deployed model's LoRA adapter goes on its root base model, loaded by the local engine (one
base, many adapters, chosen per request), with the model's own copies of its pruning rules
applied to every request first. The resolved provider is kept for ``auth_cache_ttl_s`` so a hot
model costs no database round trip; a lookup that finds nothing servable is not kept, and a
change notice for the model (it was deleted here or by another process) drops it at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from async_lru import alru_cache
from sqlalchemy import Connection

from tunepipe.db import fine_tunes as repo
from tunepipe.db import pruning_rules as rule_repo
from tunepipe.db.database import Database
from tunepipe.domain.fine_tunes import FineTune, FineTuneStatus, test_set_summary
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.providers.base import ChatProvider
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.fine_tunes import test_set
from tunepipe.services.fine_tunes.files import materialise_adapter
from tunepipe.services.local.serving import LocalModels
from tunepipe.settings import Settings

SCOPE = "fine_tunes"
"""Change-feed scope; the key is ``<project id>/<slug>``."""

MAX_CACHED = 1_000


def bare_slug(slug: str) -> str:
    """``openpipe:<slug>`` or ``<slug>`` → ``<slug>``."""
    return slug.removeprefix("openpipe:")


def adapter_name(ft: FineTune) -> str:
    """The adapter's name on its base model in the engine."""
    return f"ft:{ft.id}"


class FineTuneServing:
    def __init__(
        self, settings: Settings, db: Database, local: LocalModels, feed: ChangeFeed | None = None
    ) -> None:
        self._settings = settings
        self._db = db
        self._local = local
        self._home = settings.home_dir
        self._providers = alru_cache(maxsize=MAX_CACHED, ttl=settings.auth_cache_ttl_s)(self._resolve)
        if feed is not None:
            feed.subscribe(SCOPE, self._forget)

    def _forget(self, key: str | None) -> None:
        if key is None:
            self._providers.cache_clear()
            return
        project_id, _, slug = key.partition("/")
        self._providers.cache_invalidate(project_id, slug)

    async def served(self, principal: Principal, slug: str) -> tuple[ChatProvider, str]:
        """The provider serving the project's deployed model ``slug``, and the model's identity
        (its id: a model trained later under the same slug is another model)."""
        return await self._providers(principal.project.id, bare_slug(slug))

    async def _resolve(self, project_id: str, slug: str) -> tuple[ChatProvider, str]:
        ft = await self._db.run(repo.get_by_slug, project_id, slug)
        if ft is None:
            raise NotFound(
                f"The model `openpipe:{slug}` does not exist", param="model", code="model_not_found"
            )
        if ft.status != FineTuneStatus.DEPLOYED:
            raise InvalidRequest(
                f"The model `openpipe:{slug}` is not deployed (status {ft.status})",
                param="model",
                code="model_not_deployed",
            )
        return await self.provider_for(ft), adapter_name(ft)

    async def provider_for(self, ft: FineTune) -> ChatProvider:
        """A provider for ``ft`` whatever its status (its test set runs before it is DEPLOYED)."""
        base = await self._local.find(ft.root_model)
        if base is None:
            raise NotFound(
                f"The base model {ft.root_model!r} of `openpipe:{ft.slug}` is no longer registered",
                param="model",
            )

        def load(conn: Connection) -> tuple[Path | None, list[str]]:
            return materialise_adapter(conn, self._home, ft.id), rule_repo.texts_for_fine_tune(conn, ft.id)

        adapter, rules = await self._db.run(load)
        if adapter is None:
            raise InvalidRequest(
                f"The model `openpipe:{ft.slug}` has no trained adapter",
                param="model",
                code="model_not_deployed",
            )
        from tunepipe.providers.local import LocalProvider  # imports torch: only once serving

        return LocalProvider(
            self._local.engine(),
            model_name=base.name,
            path=Path(base.path),
            adapter=(adapter_name(ft), adapter),
            display_name=f"openpipe:{ft.slug}",
            default_max_tokens=self._settings.local_default_max_tokens,
            default_temperature=ft.default_temperature,
            prune_rules=tuple(rules),
        )

    async def evaluate_test_set(self, ft: FineTune) -> dict[str, Any]:
        """Generate and judge the model's outputs for its TEST rows; store them, return metrics."""
        rows = await self._db.run(lambda conn: list(repo.iter_entries(conn, ft.id, "TEST")))
        if not rows:
            return test_set_summary([])
        provider = await self.provider_for(ft)
        outputs = await test_set.run_rows(provider, rows)
        await self._db.run(repo.save_test_outputs, ft.id, outputs)
        return test_set_summary(outputs)

    async def take_down(self, ft: FineTune) -> None:
        """Stop serving ``ft`` in this process: forget its provider, take its adapter off its
        base model in the engine if it is loaded there."""
        self._providers.cache_invalidate(ft.project_id, ft.slug)
        if not self._local.started:
            return
        base = await self._local.find(ft.root_model)
        if base is None:
            return
        pool = self._local.engine().pool
        if base.name not in pool.loaded:
            return
        from tunepipe.engine.loading import detach_adapter

        path = Path(base.path)
        loaded = await pool.get(base.name, lambda: path)
        name = adapter_name(ft)
        if name in loaded.adapters:
            await asyncio.to_thread(detach_adapter, loaded, name)
