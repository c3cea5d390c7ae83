"""The response cache step (``op-cache``, spec B.8, and beyond it: streams read and write it).

``readWrite`` serves a stored answer or calls and stores; ``readOnly`` serves or calls without
storing; ``writeOnly`` always calls and stores. The key (:func:`tunepipe.domain.cache_keys.cache_key`)
is computed once the model is routed, so a fine-tune is cached under its id. Only a complete,
successful answer of the requested model itself is stored (not a fallback's, not a stream that
broke off). Answers are stored zlib-compressed, with their usage: a hit reports the usage the
original call had, and is logged with ``cacheHit`` and no cost.

Identical misses arriving together in one process ask the upstream once (single flight): the
first asks, the others wait for its answer and are hits. Across processes they each ask.

The store is the database (expired answers are deleted every ``expire_every_s``) or Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from async_lru import alru_cache

from tunepipe.db.outage import Throttled, unavailable
from tunepipe.domain.cache_keys import CacheMode, CacheStatus, cache_key
from tunepipe.domain.clock import now_ms
from tunepipe.domain.projects import Principal
from tunepipe.stores.responses import CacheStats, CacheStore

log = logging.getLogger(__name__)
# A store that cannot be reached (the database or Redis down) fails every lookup alike.
_unreachable = Throttled(log, 30.0)


def _failed(exc: Exception, what: str) -> None:
    """Log a cache failure: once per interval while the store cannot be reached, else with its
    traceback."""
    if unavailable(exc) or isinstance(exc, OSError) or type(exc).__name__ == "ConnectionError":
        _unreachable.error("%s: %s", what, exc.__class__.__name__)
    else:
        log.exception(what, exc_info=exc)


@dataclass(slots=True)
class Lookup:
    """One call's use of the cache: its key, what was found, and the status header."""

    mode: CacheMode
    key: str
    ttl_s: int
    hit: dict[str, Any] | None = None
    hit_json: bytes | None = None  # the hit as JSON bytes, ready to send as they are
    leading: bool = False  # this call asks the upstream for identical calls waiting on it

    @property
    def status(self) -> CacheStatus:
        if self.hit is not None:
            return CacheStatus.HIT
        return CacheStatus.MISS if self.mode.reads else CacheStatus.WRITE


_EXPIRY = struct.Struct(">q")


def encode(completion: dict[str, Any], expires_at_ms: int) -> bytes:
    """A stored answer: when it expires (so any copy of it knows), then its zlib-compressed JSON."""
    return _EXPIRY.pack(expires_at_ms) + zlib.compress(orjson.dumps(completion), 1)


def decode(value: bytes) -> tuple[int, bytes, dict[str, Any]]:
    """``(expires_at_ms, JSON bytes, completion)`` of a stored answer."""
    (expires_at,) = _EXPIRY.unpack_from(value)
    raw = zlib.decompress(value[_EXPIRY.size :])
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("a cached answer is not a JSON object")
    return expires_at, raw, data


class _Absent(Exception):
    """Raised inside the in-process layer's lookup, so that a miss is never remembered."""


def complete_answer(completion: dict[str, Any]) -> bool:
    """Worth storing: it has choices and none was cut by an error."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") for c in choices)


class ResponseCache:
    def __init__(
        self,
        store: CacheStore,
        *,
        default_ttl_s: int,
        expire_every_s: float = 600.0,
        hot_entries: int = 4096,
        hot_ttl_s: float = 5.0,
    ) -> None:
        self.store = store
        self._default_ttl_s = default_ttl_s
        self._expire_every_s = expire_every_s
        self._expiry: asyncio.Task[None] | None = None
        self._flights: dict[str, asyncio.Future[bytes | None]] = {}
        # Answers read lately, kept in this process for a few seconds (async-lru: bounded, one
        # read of the store per key in flight, misses never kept), so a hot answer costs no trip
        # to the store; each copy knows when its answer expires.
        self._hot = alru_cache(maxsize=hot_entries, ttl=hot_ttl_s)(self._stored)

    async def _stored(self, project_id: str, model: str, key: str) -> bytes:
        value = await self.store.get(project_id, model, key)
        if value is None:
            raise _Absent
        return value

    async def lookup(
        self,
        principal: Principal,
        model: str,
        identity: str,
        body: dict[str, Any],
        mode: CacheMode,
        ttl_s: int | None,
    ) -> Lookup:
        found = Lookup(mode, cache_key(principal.project.id, identity, body), ttl_s or self._default_ttl_s)
        if mode.reads:
            try:
                expires_at, found.hit_json, found.hit = decode(
                    await self._hot(principal.project.id, model, found.key)
                )
                if expires_at <= now_ms():
                    found.hit_json = found.hit = None
            except _Absent:
                pass
            except Exception as exc:  # a broken cache is a miss, never a failed call
                _failed(exc, "response cache read failed")
        return found

    async def follow(self, lookup: Lookup, timeout_s: float = 120.0) -> None:
        """Single flight: when an identical call of this process is already asking the upstream,
        wait for its answer and take it as a hit, instead of asking again."""
        flight = self._flights.get(lookup.key)
        if flight is None or not lookup.mode.reads or lookup.hit is not None:
            return
        with contextlib.suppress(TimeoutError):
            answer = await asyncio.wait_for(asyncio.shield(flight), timeout_s)
            if answer is not None:
                _, lookup.hit_json, lookup.hit = decode(answer)

    def lead(self, lookup: Lookup) -> None:
        """This call asks the upstream: identical calls arriving meanwhile wait for it."""
        if lookup.mode.writes and lookup.hit is None and lookup.key not in self._flights:
            self._flights[lookup.key] = asyncio.get_running_loop().create_future()
            lookup.leading = True

    def land(self, lookup: Lookup, completion: dict[str, Any] | None) -> None:
        """Hand the answer (None: there is none) to the calls that waited for it."""
        if not lookup.leading:
            return
        lookup.leading = False
        flight = self._flights.pop(lookup.key, None)
        if flight is not None and not flight.done():
            good = completion is not None and complete_answer(completion)
            flight.set_result(encode(completion, 0) if good and completion is not None else None)

    async def save(
        self, principal: Principal, model: str, lookup: Lookup, completion: dict[str, Any]
    ) -> None:
        if not lookup.mode.writes or not complete_answer(completion):
            return
        expires_at = now_ms() + lookup.ttl_s * 1000
        try:
            value = encode(completion, expires_at)
            await self.store.put(principal.project.id, model, lookup.key, value, lookup.ttl_s)
            self._hot.cache_invalidate(principal.project.id, model, lookup.key)
        except Exception as exc:  # the caller has its answer; a cache that cannot store is logged
            _failed(exc, "response cache write failed")

    async def get(
        self, principal: Principal, model: str, identity: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The stored answer of a request, if any (``/check-cache``)."""
        found = await self.lookup(principal, model, identity, body, CacheMode.READ_ONLY, None)
        return found.hit

    async def clear(self, principal: Principal, model: str | None) -> int:
        """Delete a project's answers (of one model); other processes may serve copies they read
        in the last ``hot_ttl_s`` seconds."""
        self._hot.cache_clear()
        return await self.store.clear(principal.project.id, model)

    async def stats(self, principal: Principal) -> list[CacheStats]:
        return await self.store.stats(principal.project.id)

    def start(self) -> None:
        self._expiry = asyncio.create_task(self._expire_forever())

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(self._expire_every_s)
            try:
                while await self.store.expire() >= 10_000:
                    await asyncio.sleep(0)
            except Exception:
                log.exception("deleting expired cached answers failed")

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        await self.store.close()
