"""Turn an ``Authorization: Bearer opk_…`` header into the calling project."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from tunepipe.db.projects import principal_for_key
from tunepipe.db.records import Principal
from tunepipe.errors import AuthenticationFailed, ReadOnlyKey
from tunepipe.services.ttl_cache import TTLCache


class Authenticator:
    def __init__(self, engine: Engine, ttl_s: float) -> None:
        self._engine = engine
        self._cache: TTLCache[str, Principal | None] = TTLCache(ttl_s)

    async def principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthenticationFailed("Missing API key: send `Authorization: Bearer <your tunepipe key>`")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed("Malformed Authorization header: expected `Bearer <key>`")
        principal = await self._cache.get(
            token, lambda: asyncio.to_thread(principal_for_key, self._engine, token)
        )
        if principal is None:
            raise AuthenticationFailed("Invalid API key", code="invalid_api_key")
        return principal

    async def writer(self, authorization: str | None) -> Principal:
        """The caller, who must hold a read/write key."""
        principal = await self.principal(authorization)
        if principal.read_only:
            raise ReadOnlyKey()
        return principal
