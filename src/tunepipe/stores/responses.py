"""Where cached answers live. Values are opaque bytes (the caller compresses); every store
expires them itself and can clear and count a project's answers, by model.

* :class:`DatabaseStore`: the ``response_cache`` table; an expired answer is never served, and
  :meth:`DatabaseStore.expire` (run periodically by the cache) deletes them in batches.
* :class:`RedisStore`: ``SET … PX`` with Redis's own expiry; keys are named
  ``tunepipe:cache:<project>:<model digest>:<key>``, so a project's (or a model's) answers are
  found by ``SCAN`` for clearing and counting, never on the hot path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from tunepipe.db import response_cache as repo
from tunepipe.db.database import Database
from tunepipe.domain.clock import now_ms


@dataclass(frozen=True, slots=True)
class CacheStats:
    model: str
    entries: int
    bytes: int


class CacheStore(Protocol):
    async def get(self, project_id: str, model: str, key: str) -> bytes | None: ...

    async def put(self, project_id: str, model: str, key: str, value: bytes, ttl_s: int) -> None: ...

    async def clear(self, project_id: str, model: str | None) -> int: ...

    async def stats(self, project_id: str) -> list[CacheStats]: ...

    async def expire(self) -> int: ...

    async def close(self) -> None: ...


class DatabaseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, project_id: str, model: str, key: str) -> bytes | None:
        return await self._db.run(repo.get, key, now_ms())

    async def put(self, project_id: str, model: str, key: str, value: bytes, ttl_s: int) -> None:
        now = now_ms()
        await self._db.run(repo.put, key, project_id, model, value, now, now + ttl_s * 1000)

    async def clear(self, project_id: str, model: str | None) -> int:
        return await self._db.run(repo.clear, project_id, model)

    async def stats(self, project_id: str) -> list[CacheStats]:
        return [CacheStats(*row) for row in await self._db.run(repo.stats, project_id, now_ms())]

    async def expire(self) -> int:
        return await self._db.run(repo.expire, now_ms())

    async def close(self) -> None:
        return None


PREFIX = "tunepipe:cache"
_MODEL = "tunepipe:cache-model"  # model digest -> model name, to name models in stats


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _digest(model: str) -> str:
    return hashlib.sha256(model.encode()).hexdigest()[:16]


class RedisStore:
    def __init__(self, url: str) -> None:
        self._redis: Redis = Redis.from_url(url)

    def _name(self, project_id: str, model: str, key: str) -> str:
        return f"{PREFIX}:{project_id}:{_digest(model)}:{key}"

    async def get(self, project_id: str, model: str, key: str) -> bytes | None:
        value = await self._redis.get(self._name(project_id, model, key))
        return value.encode() if isinstance(value, str) else value

    async def put(self, project_id: str, model: str, key: str, value: bytes, ttl_s: int) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._name(project_id, model, key), value, px=ttl_s * 1000)
            pipe.hset(f"{_MODEL}:{project_id}", _digest(model), model)
            await pipe.execute()

    async def _scan(self, pattern: str) -> list[str]:
        return [
            k.decode() if isinstance(k, bytes) else k
            async for k in self._redis.scan_iter(match=pattern, count=1000)
        ]

    async def clear(self, project_id: str, model: str | None) -> int:
        digest = _digest(model) if model is not None else "*"
        keys = await self._scan(f"{PREFIX}:{project_id}:{digest}:*")
        removed = 0
        for start in range(0, len(keys), 1000):
            removed += int(await self._redis.unlink(*keys[start : start + 1000]))
        names = f"{_MODEL}:{project_id}"
        await (self._redis.unlink(names) if model is None else self._redis.hdel(names, _digest(model)))
        return removed

    async def stats(self, project_id: str) -> list[CacheStats]:
        raw = await self._redis.hgetall(f"{_MODEL}:{project_id}")
        names = {_text(k): _text(v) for k, v in raw.items()}
        counts: dict[str, list[int]] = {}
        keys = await self._scan(f"{PREFIX}:{project_id}:*")
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.strlen(key)
            sizes = await pipe.execute()
        for key, size in zip(keys, sizes, strict=True):
            slot = counts.setdefault(key.split(":")[3], [0, 0])
            slot[0] += 1
            slot[1] += int(size)
        return [CacheStats(names.get(d, d), n, size) for d, (n, size) in sorted(counts.items())]

    async def expire(self) -> int:
        return 0  # Redis expires keys itself

    async def close(self) -> None:
        await self._redis.aclose()
