"""Turn an ``Authorization: Bearer opk_…`` header into the calling project.

Keys that exist are kept in memory for ``auth_cache_ttl_s`` (bounded, least recently used out
first), so the hot path does no database round trip. Concurrent first uses of one key share a
single lookup; a key that does not exist is never remembered, so a flood of made-up tokens
neither fills the cache nor pushes real keys out of it.

A key's rate limits travel with it (:attr:`Principal.limits`), so changing them must not wait
for the TTL: every change is announced on the settings change feed under :data:`SCOPE`, and
each process's authenticator then forgets what it remembered.
"""

from __future__ import annotations

from async_lru import alru_cache

from tunepipe.db.database import Database
from tunepipe.db.projects import principal_for_key
from tunepipe.domain.projects import Principal
from tunepipe.errors import AuthenticationFailed, ReadOnlyKey
from tunepipe.services.changes import ChangeFeed

MAX_CACHED_KEYS = 10_000

SCOPE = "keys"
"""Change-feed scope of API keys; the key is the API key's id."""


class _UnknownKey(Exception):
    """Raised inside the cached lookup so that a miss is not cached."""


class Authenticator:
    def __init__(self, db: Database, ttl_s: float, feed: ChangeFeed | None = None) -> None:
        self._db = db
        self._lookup = alru_cache(maxsize=MAX_CACHED_KEYS, ttl=ttl_s)(self._load)
        if feed is not None:
            feed.subscribe(SCOPE, self.forget)

    async def _load(self, token: str) -> Principal:
        principal = await self._db.run(principal_for_key, token)
        if principal is None:
            raise _UnknownKey
        return principal

    async def principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthenticationFailed("Missing API key: send `Authorization: Bearer <your tunepipe key>`")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed("Malformed Authorization header: expected `Bearer <key>`")
        try:
            return await self._lookup(token)
        except _UnknownKey:
            raise AuthenticationFailed("Invalid API key", code="invalid_api_key") from None

    async def writer(self, authorization: str | None) -> Principal:
        """The caller, who must hold a read/write key."""
        principal = await self.principal(authorization)
        if principal.read_only:
            raise ReadOnlyKey()
        return principal

    def forget(self, _key: str | None = None) -> None:
        """Drop every remembered key (a key's limits changed, a key was revoked, a project
        removed): the cache is keyed by the secret, which a change notice never names."""
        self._lookup.cache_clear()
