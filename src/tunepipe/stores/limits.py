"""Rate-limit counters per API key: requests and tokens over a sliding minute, and requests in
flight.

* :class:`MemoryLimiter`: one process's counters (``tunepipe serve`` with one worker).
* :class:`RedisLimiter`: one Lua script per admission, so the check and the count are atomic
  across every process and host; windows are sorted sets scored by time (a true sliding
  window, not fixed buckets), and a request in flight is a member scored by when it expires, so
  a process that dies never holds a slot for longer than ``slot_ttl_s``.

A request is admitted when the key has a free concurrency slot, fewer than ``rpm`` requests in
the last minute and fewer than ``tpm`` tokens in it; it counts one request at once and its
tokens when it ends (a request's size is only known then). Both limiters answer alike: a
refusal says when enough of the window has aged out to admit a call, and every decision says
when the oldest request and the oldest tokens leave the window (OpenAI's ``x-ratelimit-reset-*``).
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis

from tunepipe.domain.projects import KeyLimits as Limits

WINDOW_S = 60.0
SLOT_TTL_S = 600.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    slot: str  # the admission's id (frees its concurrency slot, counts its tokens)
    requests: int  # requests in the window, this one included when allowed
    tokens: int  # tokens in the window
    retry_after_s: float = 0.0
    reason: str = ""  # requests | tokens | concurrency
    reset_requests_s: float = 0.0  # until the oldest request leaves the window (0: it is empty)
    reset_tokens_s: float = 0.0  # until the oldest counted tokens leave it


class Limiter(Protocol):
    async def admit(self, key_id: str, limits: Limits, now: float) -> Decision: ...

    async def release(self, key_id: str, limits: Limits, slot: str, tokens: int, now: float) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Counters:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0
    in_flight: int = 0

    def trim(self, now: float) -> None:
        horizon = now - WINDOW_S
        while self.requests and self.requests[0] <= horizon:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= horizon:
            self.token_sum -= self.tokens.popleft()[1]


class MemoryLimiter:
    def __init__(self) -> None:
        self._keys: dict[str, _Counters] = {}

    async def admit(self, key_id: str, limits: Limits, now: float) -> Decision:
        c = self._keys.setdefault(key_id, _Counters())
        c.trim(now)
        count, used = len(c.requests), c.token_sum
        tokens_reset = c.tokens[0][0] + WINDOW_S - now if c.tokens else 0.0

        def refused(retry_after_s: float, reason: str) -> Decision:
            requests_reset = c.requests[0] + WINDOW_S - now if c.requests else 0.0
            return Decision(False, "", count, used, retry_after_s, reason, requests_reset, tokens_reset)

        if limits.max_concurrency and c.in_flight >= limits.max_concurrency:
            return refused(1.0, "concurrency")
        if limits.rpm and count >= limits.rpm:
            return refused(c.requests[0] + WINDOW_S - now, "requests")
        if limits.tpm and used >= limits.tpm:
            return refused(_tokens_free_in(c.tokens, used - limits.tpm, now), "tokens")
        c.requests.append(now)
        c.in_flight += 1
        return Decision(True, "", count + 1, used, 0.0, "", c.requests[0] + WINDOW_S - now, tokens_reset)

    async def release(self, key_id: str, limits: Limits, slot: str, tokens: int, now: float) -> None:
        c = self._keys.get(key_id)
        if c is None:
            return
        c.in_flight = max(0, c.in_flight - 1)
        if tokens > 0:
            c.tokens.append((now, tokens))
            c.token_sum += tokens

    async def close(self) -> None:
        return None


def _tokens_free_in(window: deque[tuple[float, int]], excess: int, now: float) -> float:
    """Seconds until enough of the window's tokens age out to bring it under the limit."""
    freed = 0
    for at, tokens in window:
        freed += tokens
        if freed > excess:
            return max(0.0, at + WINDOW_S - now)
    return WINDOW_S


_ADMIT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, tpm, conc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local function leaves(key)  -- ms until the oldest member of a window leaves it (0: empty)
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #oldest == 0 then return 0 end
  return tonumber(oldest[2]) + window - now
end
local count = redis.call('ZCARD', KEYS[1])
local used, entries = 0, {}
if tpm > 0 then
  entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[i], ':(%d+)$'))
  end
end
local tokens_reset = leaves(KEYS[2])
if conc > 0 and redis.call('ZCARD', KEYS[3]) >= conc then
  return {0, 'concurrency', 1000, count, used, leaves(KEYS[1]), tokens_reset}
end
if rpm > 0 and count >= rpm then
  local wait = leaves(KEYS[1])
  return {0, 'requests', wait, count, used, wait, tokens_reset}
end
if tpm > 0 and used >= tpm then
  -- until enough of the oldest tokens leave the window to bring it under the limit
  local freed, wait = 0, window
  for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
    if freed > used - tpm then
      wait = tonumber(entries[i + 1]) + window - now
      break
    end
  end
  return {0, 'tokens', wait, count, used, leaves(KEYS[1]), tokens_reset}
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('PEXPIRE', KEYS[1], window)
if conc > 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[6])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[7]))
end
return {1, '', 0, count + 1, used, leaves(KEYS[1]), tokens_reset}
"""


class RedisLimiter:
    def __init__(self, url: str) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._admit = self._redis.register_script(_ADMIT)

    @staticmethod
    def _keys(key_id: str) -> list[str]:
        base = f"tunepipe:limits:{key_id}"
        return [f"{base}:requests", f"{base}:tokens", f"{base}:in-flight"]

    async def admit(self, key_id: str, limits: Limits, now: float) -> Decision:
        slot = uuid.uuid4().hex
        args: list[int | str] = [
            int(now * 1000),
            int(WINDOW_S * 1000),
            limits.rpm or 0,
            limits.tpm or 0,
            limits.max_concurrency or 0,
            slot,
            int(SLOT_TTL_S * 1000),
        ]
        out = await self._admit(keys=self._keys(key_id), args=args)
        allowed, reason, retry_ms, count, used, requests_reset_ms, tokens_reset_ms = out
        reason_text = reason.decode() if isinstance(reason, bytes) else str(reason)
        return Decision(
            bool(allowed),
            slot,
            int(count),
            int(used),
            _seconds(retry_ms),
            reason_text,
            _seconds(requests_reset_ms),
            _seconds(tokens_reset_ms),
        )

    async def release(self, key_id: str, limits: Limits, slot: str, tokens: int, now: float) -> None:
        requests, token_key, in_flight = self._keys(key_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            if limits.max_concurrency:
                pipe.zrem(in_flight, slot)
            if limits.tpm and tokens > 0:
                pipe.zadd(token_key, {f"{slot}:{tokens}": int(now * 1000)})
                pipe.pexpire(token_key, int(WINDOW_S * 1000))
            await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()


def _seconds(ms: object) -> float:
    return max(0.0, float(str(ms)) / 1000)


def reset_text(seconds: float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` form: ``1s``, ``6m0s``, ``250ms``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
