"""Turn an ``Authorization: Bearer …`` header into the caller: a project's key
(:class:`Principal`) or an administrator's (:class:`Admin`).

The two never stand in for each other: project routes take :meth:`Authenticator.principal`,
which refuses an admin key (it belongs to no project), and installation-wide operations take
:meth:`Authenticator.admin`, which refuses every project key (``admin_required``).

Keys that exist are kept in memory for ``auth_cache_ttl_s`` (bounded, least recently used out
first), so the hot path does no database round trip. Concurrent first uses of one key share a
single lookup; a key that does not exist is never remembered, so a flood of made-up tokens
neither fills the cache nor pushes real keys out of it.

A key's rate limits travel with it (:attr:`Principal.limits`), so changing them must not wait
for the TTL: every change is announced on the settings change feed under :data:`SCOPE`, and
each process's authenticator then forgets what it remembered.

While the database cannot be reached, a key read within ``db_stale_max_s`` is still accepted as
it was last read (:class:`~tunepipe.db.outage.LastKnown`), so callers seen recently keep being
served; any other key gets a 503 (``database_unavailable``), never a 500.
"""

from __future__ import annotations

import logging

from async_lru import alru_cache

from tunepipe.db.database import Database
from tunepipe.db.outage import LastKnown, Throttled, unavailable
from tunepipe.db.projects import key_holder
from tunepipe.domain.projects import Admin, Principal
from tunepipe.errors import AuthenticationFailed, PermissionDenied, ReadOnlyKey
from tunepipe.services.changes import ChangeFeed

MAX_CACHED_KEYS = 10_000

SCOPE = "keys"
"""Change-feed scope of API keys; the key is the API key's id."""

ADMIN_REQUIRED = (
    "This operation manages the installation and needs an admin key "
    "(`tunepipe admin create-key` on the server host); a project's key cannot use it."
)
PROJECT_KEY_REQUIRED = (
    "Admin keys manage the installation and reach no project's data: call this with a project's API key."
)


class _UnknownKey(Exception):
    """Raised inside the cached lookup so that a miss is not cached."""


class Authenticator:
    def __init__(
        self,
        db: Database,
        ttl_s: float,
        feed: ChangeFeed | None = None,
        *,
        stale_max_s: float = 0.0,
        outage: Throttled | None = None,
    ) -> None:
        """``stale_max_s``: while the database cannot be reached, a key read up to this long
        ago is still accepted as it was (``outage`` says so once per interval)."""
        self._db = db
        self._lookup = alru_cache(maxsize=MAX_CACHED_KEYS, ttl=ttl_s)(self._load)
        self._last: LastKnown[str, Principal | Admin] = LastKnown(
            "API keys",
            maxsize=MAX_CACHED_KEYS,
            max_age_s=stale_max_s,
            outage=outage or Throttled(logging.getLogger(__name__), 30.0),
        )
        if feed is not None:
            feed.subscribe(SCOPE, self.forget)

    async def _load(self, token: str) -> Principal | Admin:
        try:
            holder = await self._db.run(key_holder, token)
        except Exception as exc:
            if not unavailable(exc):
                raise
            return self._last.recall(token, exc)  # or DatabaseUnavailable (503)
        if holder is None:
            raise _UnknownKey
        return self._last.remember(token, holder)

    async def holder(self, authorization: str | None) -> Principal | Admin:
        """Whoever holds the key: a project's key or an administrator's."""
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

    async def principal(self, authorization: str | None) -> Principal:
        """The calling project's key (read/write or read-only); an admin key is refused."""
        holder = await self.holder(authorization)
        if isinstance(holder, Admin):
            raise PermissionDenied(PROJECT_KEY_REQUIRED, code="project_key_required")
        return holder

    async def admin(self, authorization: str | None) -> Admin:
        """The caller, who must hold an admin key."""
        holder = await self.holder(authorization)
        if not isinstance(holder, Admin):
            raise PermissionDenied(ADMIN_REQUIRED, code="admin_required")
        return holder

    async def writer(self, authorization: str | None) -> Principal:
        """The caller, who must hold a read/write key."""
        principal = await self.principal(authorization)
        if principal.read_only:
            raise ReadOnlyKey()
        return principal

    def forget(self, _key: str | None = None) -> None:
        """Drop every remembered key (a key's limits changed, a key was revoked, a project
        removed): the cache is keyed by the secret, which a change notice never names. What an
        outage would serve is dropped for the key (or project) the notice names."""
        self._lookup.cache_clear()
        self._last.forget(None if _key is None else lambda _, holder: _names(holder, _key))


def _names(holder: Principal | Admin, key: str) -> bool:
    """Whether a change notice naming ``key`` (a key's id, or a deleted project's) concerns it."""
    return holder.key_id == key or (isinstance(holder, Principal) and holder.project.id == key)
