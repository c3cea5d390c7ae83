"""The rate-limit step: a key with limits is admitted or refused (429) before any other work.

A refusal says when to come back (``Retry-After``, whole seconds) and where the key stands, in
OpenAI's ``x-ratelimit-*`` headers; an admitted call carries the same headers and, when it ends,
frees its concurrency slot and counts its tokens. A key without limits costs one attribute read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from tunepipe.domain.projects import KeyLimits, Principal
from tunepipe.errors import RateLimited
from tunepipe.stores.limits import Decision, Limiter, reset_text


@dataclass(slots=True)
class Ticket:
    """An admitted call's hold on its key's limits."""

    key_id: str
    limits: KeyLimits
    slot: str
    headers: dict[str, str]
    released: bool = False


def headers_for(limits: KeyLimits, d: Decision) -> dict[str, str]:
    out: dict[str, str] = {}
    if limits.rpm:
        out["x-ratelimit-limit-requests"] = str(limits.rpm)
        out["x-ratelimit-remaining-requests"] = str(max(0, limits.rpm - d.requests))
        out["x-ratelimit-reset-requests"] = reset_text(
            d.retry_after_s if d.reason == "requests" else d.reset_requests_s
        )
    if limits.tpm:
        out["x-ratelimit-limit-tokens"] = str(limits.tpm)
        out["x-ratelimit-remaining-tokens"] = str(max(0, limits.tpm - d.tokens))
        out["x-ratelimit-reset-tokens"] = reset_text(
            d.retry_after_s if d.reason == "tokens" else d.reset_tokens_s
        )
    return out


_WHAT = {
    "requests": "requests per minute",
    "tokens": "tokens per minute",
    "concurrency": "requests in flight",
}


class RateLimits:
    def __init__(self, limiter: Limiter, clock: Callable[[], float] = time.time) -> None:
        self.limiter = limiter
        self._clock = clock

    async def admit(self, principal: Principal) -> Ticket | None:
        limits = principal.limits
        if limits is None:
            return None
        d = await self.limiter.admit(principal.key_id, limits, self._clock())
        headers = headers_for(limits, d)
        if not d.allowed:
            limit = {"requests": limits.rpm, "tokens": limits.tpm, "concurrency": limits.max_concurrency}[
                d.reason
            ]
            wait = max(1, math.ceil(d.retry_after_s))
            raise RateLimited(
                f"Rate limit reached for this API key: {limit} {_WHAT[d.reason]}. Try again in {wait} s.",
                headers={**headers, "Retry-After": str(wait)},
            )
        return Ticket(principal.key_id, limits, d.slot, headers)

    async def release(self, ticket: Ticket | None, tokens: int) -> None:
        """Free the call's slot and count its tokens (once, however the call ended)."""
        if ticket is None or ticket.released:
            return
        ticket.released = True
        await self.limiter.release(ticket.key_id, ticket.limits, ticket.slot, tokens, self._clock())
