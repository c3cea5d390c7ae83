"""Where a ``model`` goes: the provider to call, with which credentials, at what price; and what
``GET /models`` lists.

Per-project provider settings override the environment defaults; both are read through a
short-lived cache so routing costs no database round trip on the hot path. ``openpipe:<slug>``
(a fine-tune) is resolved by the fine-tune service, set on the router after both are built
(:attr:`Router.fine_tunes`): it needs the local engine the router also serves ``local:`` from.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy import Engine

from tunepipe.db import provider_config
from tunepipe.db.records import ExternalProvider, Principal, ProviderKey
from tunepipe.db.secrets import SecretBox
from tunepipe.domain.model_ref import ModelRef, RouteKind, parse_model
from tunepipe.domain.pricing import Price, listed_models, price_for
from tunepipe.errors import InvalidRequest, NotFound, PermissionDenied
from tunepipe.providers.anthropic import AnthropicProvider
from tunepipe.providers.base import ChatProvider
from tunepipe.providers.openai_compat import OpenAICompatProvider
from tunepipe.services.fine_tune_views import context_window, routed_model_view
from tunepipe.services.local_models import LocalModels
from tunepipe.services.ttl_cache import TTLCache
from tunepipe.settings import Settings

if TYPE_CHECKING:
    from tunepipe.services.fine_tunes import FineTuneService

_OFFICIAL_HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com")


@dataclass(frozen=True, slots=True)
class ProjectProviders:
    keys: dict[str, ProviderKey]
    external: dict[str, ExternalProvider]


@dataclass(frozen=True, slots=True)
class Route:
    ref: ModelRef
    provider: ChatProvider
    price: Price | None


class Router:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        box: SecretBox,
        session: aiohttp.ClientSession,
        local: LocalModels | None = None,
    ) -> None:
        self._settings = settings
        self.local = local
        self.fine_tunes: FineTuneService | None = None  # set once the service is built
        self._engine = engine
        self._box = box
        self._session = session
        self._cache: TTLCache[str, ProjectProviders] = TTLCache(settings.auth_cache_ttl_s)

    def invalidate(self, project_id: str) -> None:
        self._cache.invalidate(project_id)

    async def project_providers(self, project_id: str) -> ProjectProviders:
        return await self._cache.get(project_id, lambda: asyncio.to_thread(self._load, project_id))

    def _load(self, project_id: str) -> ProjectProviders:
        keys = provider_config.list_provider_keys(self._engine, self._box, project_id)
        external = provider_config.list_external_providers(self._engine, self._box, project_id)
        return ProjectProviders(keys=keys, external={p.slug: p for p in external})

    def credentials(self, kind: RouteKind, providers: ProjectProviders) -> tuple[str, str | None]:
        s = self._settings
        defaults = {
            RouteKind.OPENAI: (s.openai_base_url, s.openai_api_key),
            RouteKind.ANTHROPIC: (s.anthropic_base_url, s.anthropic_api_key),
            RouteKind.GEMINI: (s.gemini_base_url, s.gemini_api_key),
        }
        base_url, api_key = defaults[kind]
        override = providers.keys.get(kind.value)
        if override is not None:
            base_url = override.base_url or base_url
            api_key = override.api_key or api_key
        if api_key is None and any(host in base_url for host in _OFFICIAL_HOSTS):
            env = {RouteKind.OPENAI: "OPENAI", RouteKind.ANTHROPIC: "ANTHROPIC", RouteKind.GEMINI: "GEMINI"}[
                kind
            ]
            raise InvalidRequest(
                f"No {kind.value} API key is configured for this project: set {env}_API_KEY or run "
                f"`tunepipe providers set-key {kind.value}`",
                param="model",
                code="missing_provider_key",
            )
        return base_url, api_key

    async def resolve(self, principal: Principal, ref: ModelRef) -> Route:
        if ref.kind is RouteKind.FINE_TUNE:
            if self.fine_tunes is None:
                raise NotFound(
                    f"The model `openpipe:{ref.name}` does not exist", param="model", code="model_not_found"
                )
            return Route(ref=ref, provider=await self.fine_tunes.provider(principal, ref.name), price=None)
        if ref.kind is RouteKind.LOCAL:
            if self.local is None:
                raise NotFound(f"The model `local:{ref.name}` does not exist", param="model")
            return Route(ref=ref, provider=await self.local.provider(ref.name), price=None)
        if ref.is_plain_openai and principal.read_only:
            raise PermissionDenied("Read-only OpenPipe API keys cannot access the base OpenAI API")
        providers = await self.project_providers(principal.project.id)
        if ref.kind is RouteKind.EXTERNAL:
            return self._external(ref, providers)
        base_url, api_key = self.credentials(ref.kind, providers)
        provider: ChatProvider
        if ref.kind is RouteKind.ANTHROPIC:
            provider = AnthropicProvider(self._session, base_url=base_url, api_key=api_key)
        else:
            name = "Gemini" if ref.kind is RouteKind.GEMINI else "OpenAI"
            provider = OpenAICompatProvider(self._session, base_url=base_url, api_key=api_key, name=name)
        return Route(ref=ref, provider=provider, price=price_for(ref.kind, ref.name))

    def _external(self, ref: ModelRef, providers: ProjectProviders) -> Route:
        assert ref.provider_slug is not None
        ext = providers.external.get(ref.provider_slug)
        if ext is None:
            raise NotFound(
                f"The model `openpipe:{ref.provider_slug}/{ref.name}` does not exist: no external provider "
                f"{ref.provider_slug!r} in this project",
                param="model",
                code="model_not_found",
            )
        price = None
        for m in ext.models:
            if m.slug == ref.name and (m.input_cost_per_m is not None or m.output_cost_per_m is not None):
                price = Price(m.input_cost_per_m or 0.0, m.output_cost_per_m or 0.0)
        provider = OpenAICompatProvider(
            self._session,
            base_url=ext.base_url,
            api_key=ext.api_key,
            name=f"external provider {ext.slug!r}",
            azure_api_version=(ext.api_version or "2024-10-21") if ext.kind == "azure" else None,
        )
        return Route(ref=ref, provider=provider, price=price)


async def available_models(
    router: Router, principal: Principal, *, fine_tunes: bool = True
) -> list[dict[str, Any]]:
    """Every model the caller can put in ``model``: priced models of every provider with usable
    credentials, registered local models, the project's external models, and (``fine_tunes``)
    its deployed fine-tunes as ``openpipe:<slug>``. Short OpenAI-style items."""
    providers = await router.project_providers(principal.project.id)
    out: list[dict[str, Any]] = []
    for kind in (RouteKind.OPENAI, RouteKind.ANTHROPIC, RouteKind.GEMINI):
        if kind is RouteKind.OPENAI and principal.read_only:
            continue
        try:
            router.credentials(kind, providers)
        except InvalidRequest:
            continue
        prefix = "" if kind is RouteKind.OPENAI else f"{kind.value}:"
        owner = kind.value
        out.extend(
            {"id": prefix + name, "object": "model", "created": 0, "owned_by": owner}
            for name in listed_models(kind)
        )
    if router.local is not None:
        for m in await router.local.list_models():
            out.append(
                {
                    "id": f"local:{m.name}",
                    "object": "model",
                    "created": m.created_at // 1000,
                    "owned_by": "local",
                }
            )
    for ext in providers.external.values():
        out.extend(
            {"id": f"openpipe:{ext.slug}/{m.slug}", "object": "model", "created": 0, "owned_by": ext.slug}
            for m in ext.models
        )
    if fine_tunes and router.fine_tunes is not None:
        out.extend(
            {
                "id": f"openpipe:{ft.slug}",
                "object": "model",
                "created": ft.created_at // 1000,
                "owned_by": principal.project.name,
            }
            for ft in await router.fine_tunes.list(principal)
            if ft.status == "DEPLOYED"
        )
    return out


async def list_models(router: Router, principal: Principal) -> list[dict[str, Any]]:
    """``GET /models``: the project's fine-tunes (any status, ``id`` = slug), then every other
    model it can call, all in OpenPipe's Model shape (the openpipe SDK parses each item so)."""
    trained = await router.fine_tunes.list(principal) if router.fine_tunes is not None else []
    out = await router.fine_tunes.views(principal, trained) if router.fine_tunes is not None else []
    dirs: dict[str, str] = {}
    if router.local is not None:
        dirs = {f"local:{m.name}": m.path for m in await router.local.list_models()}
    for m in await available_models(router, principal, fine_tunes=False):
        model_id = str(m["id"])
        ref = parse_model(model_id)
        price = (
            price_for(ref.kind, ref.name) if ref.kind not in (RouteKind.LOCAL, RouteKind.EXTERNAL) else None
        )
        context = await asyncio.to_thread(context_window, dirs[model_id]) if model_id in dirs else 0
        out.append(
            routed_model_view(
                model_id, owner=str(m["owned_by"]), created_s=int(m["created"]), context=context, price=price
            )
        )
    return out
