"""A project's provider credentials and external (OpenAI/Azure-compatible) model providers.

Every change is recorded in the settings change feed in its own transaction, so this process
and every other one route the next call with it (:mod:`tunepipe.services.changes`). A base URL
is refused unless the operator's network policy allows where it leads
(:mod:`tunepipe.domain.network`); the guarded session checks again on every connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection

from tunepipe.db import provider_config
from tunepipe.db.database import Database
from tunepipe.db.secrets import SecretBox
from tunepipe.domain.model_ref import LOCAL_PROVIDER
from tunepipe.domain.projects import ExternalModel, ExternalProvider, ProviderKey
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.providers.http import Upstreams
from tunepipe.services.changes import ChangeFeed, write_and_announce

BUILTIN = ("openai", "anthropic", "gemini")
EXTERNAL_KINDS = ("openai", "azure")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

SCOPE = "providers"
"""Change-feed scope; the key is the project id."""

T = TypeVar("T")


def _sendable(**values: str | None) -> None:
    """Credentials travel in request headers (``Authorization``, ``api-version``) and the URL: a
    control or non-ASCII character there would fail every call made with them, so it is refused
    when they are stored."""
    for param, value in values.items():
        if value and not (value.isascii() and value.isprintable()):
            raise InvalidRequest(f"{param} must be printable ASCII (no control characters)", param=param)


class ProviderService:
    def __init__(
        self, db: Database, box: SecretBox, upstreams: Upstreams, feed: ChangeFeed | None = None
    ) -> None:
        self._db = db
        self._box = box
        self._upstreams = upstreams
        self._feed = feed

    async def _write(self, project_id: str, fn: Callable[[Connection], T]) -> T:
        """``fn`` and the change notice in one transaction, then the local caches dropped."""
        return await write_and_announce(self._db, self._feed, SCOPE, lambda _: project_id, fn)

    async def set_key(
        self, project_id: str, provider: str, api_key: str | None, base_url: str | None
    ) -> None:
        if provider not in BUILTIN:
            raise InvalidRequest(
                f"Unknown provider {provider!r}: use one of {', '.join(BUILTIN)}", param="provider"
            )
        if not api_key and not base_url:
            raise InvalidRequest("Give an API key, a base URL, or both", param="apiKey")
        _sendable(apiKey=api_key, baseUrl=base_url)
        if base_url:
            await self._upstreams.check(base_url)
        await self._write(
            project_id,
            lambda conn: provider_config.set_provider_key(
                conn, self._box, project_id, provider, api_key, base_url
            ),
        )

    async def delete_key(self, project_id: str, provider: str) -> None:
        def delete(conn: Connection) -> None:
            if not provider_config.delete_provider_key(conn, project_id, provider):
                raise NotFound(f"No {provider} key is stored for this project")

        await self._write(project_id, delete)

    async def list_keys(self, project_id: str) -> list[ProviderKey]:
        keys = await self._db.run(provider_config.list_provider_keys, self._box, project_id)
        return list(keys.values())

    async def add_external(
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
        if slug == LOCAL_PROVIDER:
            raise InvalidRequest(
                "`local` is reserved: `openpipe:local/<id>` names the models tunepipe runs itself",
                param="slug",
            )
        if kind not in EXTERNAL_KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(EXTERNAL_KINDS)}", param="kind")
        if not base_url.startswith(("http://", "https://")):
            raise InvalidRequest("baseUrl must be an http(s) URL", param="baseUrl")
        _sendable(baseUrl=base_url, apiKey=api_key, apiVersion=api_version)
        await self._upstreams.check(base_url)
        return await self._write(
            project_id,
            lambda conn: provider_config.create_external_provider(
                conn,
                self._box,
                project_id,
                slug=slug,
                kind=kind,
                base_url=base_url,
                api_key=api_key,
                api_version=api_version,
            ),
        )

    async def list_external(self, project_id: str) -> list[ExternalProvider]:
        return await self._db.run(provider_config.list_external_providers, self._box, project_id)

    async def remove_external(self, project_id: str, slug: str) -> None:
        await self._write(
            project_id, lambda conn: provider_config.delete_external_provider(conn, project_id, slug)
        )

    async def add_model(
        self,
        project_id: str,
        provider_slug: str,
        slug: str,
        input_cost: float | None,
        output_cost: float | None,
    ) -> ExternalModel:
        if not slug or "/" in slug:
            raise InvalidRequest("Model slugs may not be empty or contain `/`", param="slug")
        return await self._write(
            project_id,
            lambda conn: provider_config.add_external_model(
                conn,
                project_id,
                provider_slug,
                slug=slug,
                input_cost_per_m=input_cost,
                output_cost_per_m=output_cost,
            ),
        )

    async def remove_model(self, project_id: str, provider_slug: str, slug: str) -> None:
        await self._write(
            project_id,
            lambda conn: provider_config.remove_external_model(conn, project_id, provider_slug, slug),
        )
