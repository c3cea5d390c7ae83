"""Managing a project's provider credentials and external model providers.

Every change invalidates the router's cached view of the project, so the next call uses it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy import Engine

from tunepipe.db import provider_config
from tunepipe.db.records import ExternalModel, ExternalProvider
from tunepipe.db.secrets import SecretBox
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.services.routing import Router

BUILTIN = ("openai", "anthropic", "gemini")
EXTERNAL_KINDS = ("openai", "azure")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _mask(secret: str | None) -> str | None:
    return None if not secret else f"{secret[:4]}…{secret[-4:]}" if len(secret) > 12 else "…"


def provider_view(p: ExternalProvider) -> dict[str, Any]:
    return {
        "slug": p.slug,
        "kind": p.kind,
        "baseUrl": p.base_url,
        "apiKey": _mask(p.api_key),
        "apiVersion": p.api_version,
        "models": [model_view(p.slug, m) for m in p.models],
    }


def model_view(provider_slug: str, m: ExternalModel) -> dict[str, Any]:
    return {
        "slug": m.slug,
        "id": f"openpipe:{provider_slug}/{m.slug}",
        "inputCostPerMillion": m.input_cost_per_m,
        "outputCostPerMillion": m.output_cost_per_m,
    }


class ProviderService:
    def __init__(self, engine: Engine, box: SecretBox, router: Router | None = None) -> None:
        self._engine = engine
        self._box = box
        self._router = router

    def _invalidate(self, project_id: str) -> None:
        if self._router is not None:
            self._router.invalidate(project_id)

    def set_key_sync(self, project_id: str, provider: str, api_key: str | None, base_url: str | None) -> None:
        if provider not in BUILTIN:
            raise InvalidRequest(
                f"Unknown provider {provider!r}: use one of {', '.join(BUILTIN)}", param="provider"
            )
        if not api_key and not base_url:
            raise InvalidRequest("Give an API key, a base URL, or both", param="apiKey")
        provider_config.set_provider_key(self._engine, self._box, project_id, provider, api_key, base_url)
        self._invalidate(project_id)

    async def set_key(
        self, project_id: str, provider: str, api_key: str | None, base_url: str | None
    ) -> None:
        await asyncio.to_thread(self.set_key_sync, project_id, provider, api_key, base_url)

    async def delete_key(self, project_id: str, provider: str) -> None:
        if not await asyncio.to_thread(
            provider_config.delete_provider_key, self._engine, project_id, provider
        ):
            raise NotFound(f"No {provider} key is stored for this project")
        self._invalidate(project_id)

    async def list_keys(self, project_id: str) -> list[dict[str, Any]]:
        keys = await asyncio.to_thread(
            provider_config.list_provider_keys, self._engine, self._box, project_id
        )
        return [
            {"provider": k.provider, "apiKey": _mask(k.api_key), "baseUrl": k.base_url} for k in keys.values()
        ]

    def add_external_sync(
        self,
        project_id: str,
        *,
        slug: str,
        kind: str,
        base_url: str,
        api_key: str | None,
        api_version: str | None,
    ) -> ExternalProvider:
        if not _SLUG.match(slug):
            raise InvalidRequest("Provider slugs use letters, digits, `.`, `_` and `-`", param="slug")
        if kind not in EXTERNAL_KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(EXTERNAL_KINDS)}", param="kind")
        if not base_url.startswith(("http://", "https://")):
            raise InvalidRequest("baseUrl must be an http(s) URL", param="baseUrl")
        created = provider_config.create_external_provider(
            self._engine,
            self._box,
            project_id,
            slug=slug,
            kind=kind,
            base_url=base_url,
            api_key=api_key,
            api_version=api_version,
        )
        self._invalidate(project_id)
        return created

    async def add_external(self, project_id: str, **fields: Any) -> ExternalProvider:
        return await asyncio.to_thread(lambda: self.add_external_sync(project_id, **fields))

    def list_external_sync(self, project_id: str) -> list[ExternalProvider]:
        return provider_config.list_external_providers(self._engine, self._box, project_id)

    async def list_external(self, project_id: str) -> list[ExternalProvider]:
        return await asyncio.to_thread(self.list_external_sync, project_id)

    def remove_external_sync(self, project_id: str, slug: str) -> None:
        provider_config.delete_external_provider(self._engine, project_id, slug)
        self._invalidate(project_id)

    async def remove_external(self, project_id: str, slug: str) -> None:
        await asyncio.to_thread(self.remove_external_sync, project_id, slug)

    def add_model_sync(
        self,
        project_id: str,
        provider_slug: str,
        slug: str,
        input_cost: float | None,
        output_cost: float | None,
    ) -> ExternalModel:
        if not slug or "/" in slug:
            raise InvalidRequest("Model slugs may not be empty or contain `/`", param="slug")
        model = provider_config.add_external_model(
            self._engine,
            project_id,
            provider_slug,
            slug=slug,
            input_cost_per_m=input_cost,
            output_cost_per_m=output_cost,
        )
        self._invalidate(project_id)
        return model

    async def add_model(
        self,
        project_id: str,
        provider_slug: str,
        slug: str,
        input_cost: float | None,
        output_cost: float | None,
    ) -> ExternalModel:
        return await asyncio.to_thread(
            self.add_model_sync, project_id, provider_slug, slug, input_cost, output_cost
        )

    def remove_model_sync(self, project_id: str, provider_slug: str, slug: str) -> None:
        provider_config.remove_external_model(self._engine, project_id, provider_slug, slug)
        self._invalidate(project_id)

    async def remove_model(self, project_id: str, provider_slug: str, slug: str) -> None:
        await asyncio.to_thread(self.remove_model_sync, project_id, provider_slug, slug)
