"""Every model a project can put in ``model``: its fine-tunes (any status) first, then priced
models of every provider with usable credentials, the registered local models, and the
project's external models. ``GET /models`` shows them all in OpenPipe's Model shape (the openpipe
SDK parses every item so) and ``openai.models.list()`` reads the same list; :meth:`ModelCatalog.find`
is ``GET /models/{id}`` for any of them."""

from __future__ import annotations

import asyncio

from tunepipe.domain.catalog import RoutedModel, TrainedModel
from tunepipe.domain.context_windows import limits_for
from tunepipe.domain.model_ref import RouteKind
from tunepipe.domain.pricing import Price, listed_models, price_for
from tunepipe.domain.projects import ExternalModel, Principal
from tunepipe.engine.sources import context_window
from tunepipe.errors import InvalidRequest, NotFound
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

    async def find(self, principal: Principal, model_id: str) -> TrainedModel | RoutedModel:
        """The listed model ``model_id`` (a fine-tune also as ``openpipe:<slug>``, a plain OpenAI
        model also as ``openai:<name>``); :class:`NotFound` for anything else."""
        slug = model_id.removeprefix("openpipe:")
        if slug and "/" not in slug:
            try:
                ft = await self._fine_tunes.get(principal, slug)
            except NotFound:
                pass
            else:
                (d,) = await self._fine_tunes.details([ft])
                return TrainedModel(d.fine_tune, d.progress, d.context, principal.project.name)
        plain = model_id.removeprefix("openai:")
        for m in await self.routed(principal):
            if m.id == model_id:
                return m
            if plain != model_id and m.id == plain and m.owner == RouteKind.OPENAI.value:
                return m.named(model_id)
        raise NotFound(
            f"The model {model_id!r} does not exist or this project cannot use it",
            param="model",
            code="model_not_found",
        )

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
            for name in listed_models(kind):
                limits = limits_for(kind, name)
                out.append(
                    RoutedModel(
                        prefix + name,
                        kind.value,
                        0,
                        context=limits.context if limits else 0,
                        max_output=limits.max_output if limits else 0,
                        price=price_for(kind, name),
                    )
                )
        local = await self._router.local.list_models()
        contexts = await asyncio.to_thread(lambda: [context_window(m.path) for m in local])
        out.extend(
            # The engine lets a completion use whatever room the prompt leaves.
            RoutedModel(f"local:{m.name}", "local", m.created_at // 1000, context, context)
            for m, context in zip(local, contexts, strict=True)
        )
        out.extend(
            RoutedModel(f"openpipe:{ext.slug}/{m.slug}", ext.slug, 0, price=_external_price(m))
            for ext in providers.external.values()
            for m in ext.models
        )
        return out


def _external_price(m: ExternalModel) -> Price | None:
    if m.input_cost_per_m is None and m.output_cost_per_m is None:
        return None
    return Price(m.input_cost_per_m or 0.0, m.output_cost_per_m or 0.0)
