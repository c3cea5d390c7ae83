"""Where a ``model`` goes: the provider to call, with which credentials, at what price.

Per-project provider settings override the environment defaults; both are read through a
short-lived cache (dropped on every change notice, :mod:`tunepipe.services.changes`) so routing
costs no database round trip on the hot path; while the database cannot be reached, what was
last read is served (up to ``db_stale_max_s`` old). ``local:<name>`` is served by the local engine and
``openpipe:<slug>`` by whatever resolves fine-tunes (:class:`FineTuneResolver`, injected: the
router knows nothing of training).

A mixture of agents is a provider built here (:class:`~tunepipe.providers.moa.MoaProvider`) over
routes resolved here, so nothing downstream tells it from a model: ``moa:<model>`` mixes one
model with itself, and ``openpipe:moa-<…>`` is one of OpenPipe's built-in mixtures or a
project's configuration (cached with the provider settings, dropped on the same notices), else,
as before, a fine-tune.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from async_lru import alru_cache
from sqlalchemy import Connection

from tunepipe.db import moa as moa_repo
from tunepipe.db import provider_config
from tunepipe.db import routing as routing_repo
from tunepipe.db.database import Database
from tunepipe.db.outage import LastKnown, Throttled, unavailable
from tunepipe.db.secrets import SecretBox
from tunepipe.domain.moa import BUILTIN, MoaConfig, ProjectMoa, single
from tunepipe.domain.model_ref import MOA_SLUG_PREFIX, ModelRef, RouteKind, names_moa, parse_model
from tunepipe.domain.pricing import Price, price_for
from tunepipe.domain.projects import ExternalProvider, Principal, ProviderKey
from tunepipe.domain.routing import FallbackChain
from tunepipe.errors import InvalidRequest, NotFound, PermissionDenied
from tunepipe.providers.anthropic import AnthropicProvider
from tunepipe.providers.base import ChatProvider
from tunepipe.providers.http import Upstreams
from tunepipe.providers.moa import Agent, MoaProvider
from tunepipe.providers.openai_compat import OpenAICompatProvider
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.local.serving import LocalModels
from tunepipe.services.projects.providers import SCOPE as PROVIDERS_SCOPE
from tunepipe.settings import Settings

_OFFICIAL_HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com")
_ENV_NAMES = {RouteKind.OPENAI: "OPENAI", RouteKind.ANTHROPIC: "ANTHROPIC", RouteKind.GEMINI: "GEMINI"}
MAX_CACHED_PROJECTS = 10_000
# Routes whose upstream takes `n` (several choices in one call); a mixture asks the others for
# its candidates one call each (Anthropic's translation refuses n > 1).
_N_KINDS = frozenset({RouteKind.OPENAI, RouteKind.EXTERNAL, RouteKind.LOCAL, RouteKind.FINE_TUNE})


class FineTuneResolver(Protocol):
    async def served(self, principal: Principal, slug: str) -> tuple[ChatProvider, str]:
        """The provider serving the project's deployed fine-tune ``slug`` and the model's
        identity (raises NotFound)."""
        ...


@dataclass(frozen=True, slots=True)
class ProjectProviders:
    """A project's routing settings, cached together and dropped together on a change notice."""

    keys: dict[str, ProviderKey]
    external: dict[str, ExternalProvider]
    fallbacks: dict[str, FallbackChain] = field(default_factory=dict)
    moa: dict[str, ProjectMoa] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    ref: ModelRef
    provider: ChatProvider
    price: Price | None
    identity: str = ""
    """What the model is, whatever it is called: a fine-tune's id, else its routed name (what the
    response cache keys on)."""

    def __post_init__(self) -> None:
        if not self.identity:
            slug = f"{self.ref.provider_slug}/" if self.ref.provider_slug else ""
            object.__setattr__(self, "identity", f"{self.ref.kind.value}:{slug}{self.ref.name}")


class Router:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        box: SecretBox,
        upstreams: Upstreams,
        local: LocalModels,
        fine_tunes: FineTuneResolver,
        feed: ChangeFeed | None = None,
        outage: Throttled | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._box = box
        self._upstreams = upstreams
        self.local = local
        self._fine_tunes = fine_tunes
        self._providers = alru_cache(maxsize=MAX_CACHED_PROJECTS, ttl=settings.auth_cache_ttl_s)(self._load)
        # Served while the database cannot be reached, as API keys are (projects/auth.py).
        self._last: LastKnown[str, ProjectProviders] = LastKnown(
            "project settings",
            maxsize=MAX_CACHED_PROJECTS,
            max_age_s=settings.db_stale_max_s,
            outage=outage or Throttled(logging.getLogger(__name__), settings.db_error_log_interval_s),
        )
        if feed is not None:
            feed.subscribe(PROVIDERS_SCOPE, self._forget)

    def _forget(self, project_id: str | None) -> None:
        if project_id is None:
            self._providers.cache_clear()
            self._last.forget()
        else:
            self._providers.cache_invalidate(project_id)
            self._last.forget(lambda key, _: key == project_id)

    async def project_providers(self, project_id: str) -> ProjectProviders:
        return await self._providers(project_id)

    async def _load(self, project_id: str) -> ProjectProviders:
        def load(conn: Connection) -> ProjectProviders:
            keys = provider_config.list_provider_keys(conn, self._box, project_id)
            external = provider_config.list_external_providers(conn, self._box, project_id)
            chains = routing_repo.list_chains(conn, project_id)
            return ProjectProviders(
                keys=keys,
                external={p.slug: p for p in external},
                fallbacks=chains,
                moa=moa_repo.list_configs(conn, project_id),
            )

        try:
            return self._last.remember(project_id, await self._db.run(load))
        except Exception as exc:
            if not unavailable(exc):
                raise
            return self._last.recall(project_id, exc)  # or DatabaseUnavailable (503)

    async def fallback_chain(self, principal: Principal, model: str) -> FallbackChain | None:
        """The project's default fallbacks and retries for ``model``, if it set any."""
        return (await self.project_providers(principal.project.id)).fallbacks.get(model)

    def session_for(self, base_url: str) -> aiohttp.ClientSession:
        """The session to call ``base_url`` with: a URL a project chose goes through the one the
        network policy guards, the operator's own as configured."""
        return self._upstreams.session_for(base_url)

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
            if override.base_url and override.base_url.rstrip("/") != base_url.rstrip("/"):
                # A URL the project chose gets the project's own key or none: the operator's
                # key never leaves for an address a tenant picked.
                base_url, api_key = override.base_url, override.api_key
            else:
                api_key = override.api_key or api_key
        if api_key is None and any(host in base_url for host in _OFFICIAL_HOSTS):
            env = _ENV_NAMES[kind]
            raise InvalidRequest(
                f"No {kind.value} API key is configured for this project: set {env}_API_KEY or run "
                f"`tunepipe providers set-key {kind.value}`",
                param="model",
                code="missing_provider_key",
            )
        return base_url, api_key

    async def resolve(self, principal: Principal, ref: ModelRef) -> Route:
        if ref.kind is RouteKind.FINE_TUNE:
            if ref.name.startswith(MOA_SLUG_PREFIX):
                mixture = await self._named_mixture(principal, ref)
                if mixture is not None:
                    return mixture
            served, identity = await self._fine_tunes.served(principal, ref.name)
            return Route(ref=ref, provider=served, price=None, identity=identity)
        if ref.kind is RouteKind.LOCAL:
            return Route(ref=ref, provider=await self.local.provider(ref.name), price=None)
        if ref.kind is RouteKind.MOA:
            inner = await self._member(principal, ref.name)
            mixed = self._mixture(single(ref.name), {ref.name: inner}, name=f"moa:{ref.name}")
            return Route(ref=ref, provider=mixed, price=None, identity=f"moa:{inner.identity}")
        if ref.is_plain_openai and principal.read_only:
            raise PermissionDenied("Read-only OpenPipe API keys cannot access the base OpenAI API")
        providers = await self.project_providers(principal.project.id)
        if ref.kind is RouteKind.EXTERNAL:
            return self._external(ref, providers)
        base_url, api_key = self.credentials(ref.kind, providers)
        provider: ChatProvider
        if ref.kind is RouteKind.ANTHROPIC:
            provider = AnthropicProvider(self.session_for(base_url), base_url=base_url, api_key=api_key)
        else:
            name = "Gemini" if ref.kind is RouteKind.GEMINI else "OpenAI"
            provider = OpenAICompatProvider(
                self.session_for(base_url), base_url=base_url, api_key=api_key, name=name
            )
        return Route(ref=ref, provider=provider, price=price_for(ref.kind, ref.name))

    async def _named_mixture(self, principal: Principal, ref: ModelRef) -> Route | None:
        """``openpipe:moa-<…>``: a built-in mixture or the project's configuration, else None."""
        config = BUILTIN.get(ref.name)
        identity = f"moa:{ref.name}"
        if config is None:
            providers = await self.project_providers(principal.project.id)
            found = providers.moa.get(ref.name.removeprefix(MOA_SLUG_PREFIX))
            if found is None:
                return None
            # A replaced configuration is another model: the response cache must not mix them.
            config, identity = found.config, f"moa:{found.id}@{found.updated_at}"
        members = {
            m: await self._member(principal, m) for m in dict.fromkeys([*config.proposers, config.aggregator])
        }
        provider = self._mixture(config, members, name=f"openpipe:{ref.name}")
        return Route(ref=ref, provider=provider, price=None, identity=identity)

    async def _member(self, principal: Principal, model: str) -> Route:
        ref = parse_model(model)
        if names_moa(ref):  # checked when configurations are written; never recurse regardless
            raise InvalidRequest(f"A mixture of agents cannot contain another: {model!r}", param="model")
        return await self.resolve(principal, ref)

    @staticmethod
    def _mixture(config: MoaConfig, members: dict[str, Route], *, name: str) -> MoaProvider:
        def agent(model: str) -> Agent:
            route = members[model]
            return Agent(
                model=model,
                upstream=route.ref.name,
                provider=route.provider,
                price=route.price,
                supports_n=route.ref.kind in _N_KINDS,
            )

        return MoaProvider(config, [agent(m) for m in config.proposers], agent(config.aggregator), name=name)

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
            self.session_for(ext.base_url),
            base_url=ext.base_url,
            api_key=ext.api_key,
            name=f"external provider {ext.slug!r}",
            azure_api_version=(ext.api_version or "2024-10-21") if ext.kind == "azure" else None,
        )
        return Route(ref=ref, provider=provider, price=price)
