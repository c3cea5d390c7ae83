"""Telling every server process that a cached setting changed.

Servers keep what the hot path reads (provider keys, external providers, base models, deployed
fine-tunes) in memory for ``auth_cache_ttl_s``. A change made here invalidates this process's
copy at once; other processes learn of it through the feed:

- **the database** (always): the use case records the change in its own transaction
  (:func:`tunepipe.db.changes.record`), and each process reads the feed every
  ``change_poll_s`` (0.5 s by default: one indexed query, not one per request);
- **Redis** (when ``TUNEPIPE_REDIS_URL`` is set): the change is also published on a channel
  every process subscribes to, so they drop their copy within milliseconds.

Either way the TTL stays as the backstop, so a missed notice costs at most the old delay.
Postgres may commit changes out of id order, so the poller rereads a window of recent changes
and skips the ids it has already applied rather than trusting a high-water mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import orjson
from sqlalchemy import Connection

from tunepipe.db import changes as repo
from tunepipe.db.database import Database
from tunepipe.domain.clock import now_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

T = TypeVar("T")

Listener = Callable[[str | None], None]
"""Called with the changed key (None: everything in the scope)."""

CHANNEL = "tunepipe:changes"
WINDOW_MS = 10_000  # changes reread on every poll, to catch late commits
KEEP_MS = 3_600_000  # older changes are pruned
LOG_EVERY_S = 60.0


class ChangeFeed:
    def __init__(self, db: Database, *, poll_s: float = 0.5, redis_url: str | None = None) -> None:
        self._db = db
        self._poll_s = poll_s
        self._redis_url = redis_url
        self._listeners: dict[str, list[Listener]] = defaultdict(list)
        self._seen: dict[int, int] = {}  # change id → when it was recorded (ms), for the window
        self._tasks: list[asyncio.Task[None]] = []
        self._publishing: set[asyncio.Task[None]] = set()
        self._redis: Redis | None = None
        self._last_error_log = 0.0

    def subscribe(self, scope: str, listener: Listener) -> None:
        self._listeners[scope].append(listener)

    def changed(self, scope: str, key: str | None = None) -> None:
        """A change committed by this process: drop the local copy now, and tell the others
        over Redis (the database feed carries it already)."""
        self._dispatch(scope, key)
        if self._redis is not None:
            task = asyncio.get_running_loop().create_task(self._publish(scope, key))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def start(self, *, poll: bool = True) -> None:
        """Connect to Redis when configured and, with ``poll``, follow the feed (from now on:
        what happened before is in no cache yet). Without ``poll`` (a one-shot CLI command) this
        process only announces its own changes."""
        if self._redis_url:
            from redis.asyncio import Redis  # only when configured

            self._redis = Redis.from_url(self._redis_url)
        if not poll:
            return
        for change_id, _, _ in await self._db.run(repo.since, now_ms() - WINDOW_MS):
            self._seen[change_id] = now_ms()
        self._tasks.append(asyncio.create_task(self._poll(), name="change-feed-poll"))
        if self._redis is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="change-feed-redis"))

    async def close(self) -> None:
        if self._publishing:  # announcements still on their way: let them go out
            await asyncio.wait(self._publishing, timeout=5.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _dispatch(self, scope: str, key: str | None) -> None:
        for listener in self._listeners.get(scope, ()):
            try:
                listener(key)
            except Exception:  # a listener's bug must not stop the others
                log.exception("change listener for %s failed", scope)

    async def poll_once(self) -> int:
        """Apply the changes other processes recorded since the last poll; how many."""
        now = now_ms()
        fresh = [
            (change_id, scope, key)
            for change_id, scope, key in await self._db.run(repo.since, now - WINDOW_MS)
            if change_id not in self._seen
        ]
        for change_id, scope, key in fresh:
            self._seen[change_id] = now
            self._dispatch(scope, key)
        for change_id, seen_at in list(self._seen.items()):
            if seen_at < now - 2 * WINDOW_MS:
                del self._seen[change_id]
        return len(fresh)

    async def _poll(self) -> None:
        pruned_at = 0
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.poll_once()
                if now_ms() - pruned_at > KEEP_MS // 4:
                    pruned_at = now_ms()
                    await self._db.run(repo.prune, pruned_at - KEEP_MS)
            except Exception as exc:  # the database may be away; the TTL still bounds staleness
                self._log_failure("reading the settings change feed failed", exc)

    async def _publish(self, scope: str, key: str | None) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.publish(CHANNEL, orjson.dumps([scope, key]))
        except Exception as exc:
            self._log_failure("publishing a settings change to Redis failed", exc)

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        with contextlib.suppress(orjson.JSONDecodeError, ValueError, TypeError):
                            scope, key = orjson.loads(message["data"])
                            self._dispatch(str(scope), None if key is None else str(key))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log_failure("the Redis settings channel failed; reconnecting", exc)
                await asyncio.sleep(1.0)

    def _log_failure(self, what: str, exc: Exception) -> None:
        # Once a minute, not once a poll: an outage must not flood the server log.
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._last_error_log >= LOG_EVERY_S:
            self._last_error_log = loop_now
            log.warning("%s: %s: %s", what, type(exc).__name__, exc)


async def write_and_announce(
    db: Database,
    feed: ChangeFeed | None,
    scope: str,
    key: Callable[[T], str | None],
    fn: Callable[[Connection], T],
) -> T:
    """Run the write ``fn`` and record its change notice in one transaction (the notice under
    ``key(result)``), then drop this process's cached copies at once."""

    def run(conn: Connection) -> T:
        out = fn(conn)
        repo.record(conn, scope, key(out))
        return out

    out = await db.run(run)
    if feed is not None:
        feed.changed(scope, key(out))
    return out
