"""Every model a project can put in ``model``: its fine-tunes (any status) first, then priced
models of every provider with usable credentials, the registered local models, and the
project's external models. ``GET /models`` shows them all in OpenPipe's Model shape (the openpipe
SDK parses every item so) and ``openai.models.list()`` reads the same list."""

from __future__ import annotations

import asyncio

from tunepipe.domain.catalog import RoutedModel, TrainedModel
from tunepipe.domain.model_ref import RouteKind
from tunepipe.domain.pricing import listed_models, price_for
from tunepipe.domain.projects import Principal
from tunepipe.engine.sources import context_window
from tunepipe.errors import InvalidRequest
from tunepipe.services.fine_tunes.service import FineTuneService
from tunepipe.services.gateway.routing import Router


class ModelCatalog:
    def __init__(self, router: Router, fine_tunes: FineTuneService) -> None:
        self._router = router
        self._fine_tunes = fine_tunes

    async def models(self, principal: Principal) -> list[TrainedModel | RoutedModel]:
        owner = principal.project.name
        trained = await self._fine_tunes.details(await self._fine_tunes.all(principal))
        out: list[TrainedModel | RoutedModel] = [
            TrainedModel(d.fine_tune, d.progress, d.context, owner) for d in trained
        ]
        out.extend(await self.routed(principal))
        return out

    async def routed(self, principal: Principal) -> list[RoutedModel]:
        providers = await self._router.project_providers(principal.project.id)
        out: list[RoutedModel] = []
        for kind in (RouteKind.OPENAI, RouteKind.ANTHROPIC, RouteKind.GEMINI):
            if kind is RouteKind.OPENAI and principal.read_only:
                continue
            try:
                self._router.credentials(kind, providers)
            except InvalidRequest:
                continue
            prefix = "" if kind is RouteKind.OPENAI else f"{kind.value}:"
            out.extend(
                RoutedModel(prefix + name, kind.value, 0, price=price_for(kind, name))
                for name in listed_models(kind)
            )
        local = await self._router.local.list_models()
        contexts = await asyncio.to_thread(lambda: [context_window(m.path) for m in local])
        out.extend(
            RoutedModel(f"local:{m.name}", "local", m.created_at // 1000, context)
            for m, context in zip(local, contexts, strict=True)
        )
        out.extend(
            RoutedModel(f"openpipe:{ext.slug}/{m.slug}", ext.slug, 0)
            for ext in providers.external.values()
            for m in ext.models
        )
        return out
