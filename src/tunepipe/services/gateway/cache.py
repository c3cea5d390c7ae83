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
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from tunepipe.domain.cache_keys import CacheMode, CacheStatus, cache_key
from tunepipe.domain.projects import Principal
from tunepipe.stores.responses import CacheStats, CacheStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Lookup:
    """One call's use of the cache: its key, what was found, and the status header."""

    mode: CacheMode
    key: str
    ttl_s: int
    hit: dict[str, Any] | None = None
    leading: bool = False  # this call asks the upstream for identical calls waiting on it

    @property
    def status(self) -> CacheStatus:
        if self.hit is not None:
            return CacheStatus.HIT
        return CacheStatus.MISS if self.mode.reads else CacheStatus.WRITE


def encode(completion: dict[str, Any]) -> bytes:
    return zlib.compress(orjson.dumps(completion), 1)


def decode(value: bytes) -> dict[str, Any]:
    data = orjson.loads(zlib.decompress(value))
    if not isinstance(data, dict):
        raise ValueError("a cached answer is not a JSON object")
    return data


def complete_answer(completion: dict[str, Any]) -> bool:
    """Worth storing: it has choices and none was cut by an error."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") for c in choices)


class ResponseCache:
    def __init__(self, store: CacheStore, *, default_ttl_s: int, expire_every_s: float = 600.0) -> None:
        self.store = store
        self._default_ttl_s = default_ttl_s
        self._expire_every_s = expire_every_s
        self._expiry: asyncio.Task[None] | None = None
        self._flights: dict[str, asyncio.Future[bytes | None]] = {}

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
                raw = await self.store.get(principal.project.id, model, found.key)
                found.hit = decode(raw) if raw is not None else None
            except Exception:  # a broken cache is a miss, never a failed call
                log.exception("response cache read failed")
        return found

    async def follow(self, lookup: Lookup, timeout_s: float = 120.0) -> None:
        """Single flight: when an identical call of this process is already asking the upstream,
        wait for its answer and take it as a hit, instead of asking again."""
        flight = self._flights.get(lookup.key)
        if flight is None or not lookup.mode.reads or lookup.hit is not None:
            return
        with contextlib.suppress(TimeoutError):
            answer = await asyncio.wait_for(asyncio.shield(flight), timeout_s)
            lookup.hit = decode(answer) if answer is not None else None

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
            flight.set_result(encode(completion) if good and completion is not None else None)

    async def save(
        self, principal: Principal, model: str, lookup: Lookup, completion: dict[str, Any]
    ) -> None:
        if not lookup.mode.writes or not complete_answer(completion):
            return
        try:
            await self.store.put(principal.project.id, model, lookup.key, encode(completion), lookup.ttl_s)
        except Exception:  # the caller has its answer; a cache that cannot store is logged
            log.exception("response cache write failed")

    async def get(
        self, principal: Principal, model: str, identity: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The stored answer of a request, if any (``/check-cache``)."""
        found = await self.lookup(principal, model, identity, body, CacheMode.READ_ONLY, None)
        return found.hit

    async def clear(self, principal: Principal, model: str | None) -> int:
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
