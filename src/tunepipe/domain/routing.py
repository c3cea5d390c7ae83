"""Fallbacks and retries: what a call may try when its model fails, and how long it waits.

A call tries its model, then each fallback in order. Each model gets ``retries`` more tries
after a failure worth retrying (429, 5xx, a timeout, a broken connection: see
:attr:`tunepipe.errors.UpstreamError.retryable`); any other failure is the caller's answer at
once. Between tries it waits what the provider asked (``Retry-After``) or an exponential back-off
with jitter, the waits of one call capped in total. ``op-fallback`` and ``op-retries`` win over
the project's default chain for the model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from tunepipe.errors import InvalidRequest

MAX_FALLBACKS = 5
MAX_RETRIES = 5
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 8.0


@dataclass(frozen=True, slots=True)
class FallbackChain:
    """A project's default for a model: the models tried after it, and its retries."""

    model: str
    fallbacks: tuple[str, ...]
    retries: int | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one model, as the log records it."""

    model: str
    status: int  # the HTTP status the try ended with (200 for the answer)
    latency_ms: int
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "status": self.status, "latency_ms": self.latency_ms}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    """The models a call may try, in order, and the retries each gets."""

    models: tuple[str, ...]
    retries: int = 0


def parse_fallback_header(value: str | None) -> tuple[str, ...] | None:
    """``op-fallback: ["model", …]``."""
    if value is None:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Failed to parse op-fallback: {exc}", param="op-fallback") from exc
    if not isinstance(parsed, list) or not all(isinstance(m, str) and m.strip() for m in parsed):
        raise InvalidRequest("op-fallback must be a JSON array of model names", param="op-fallback")
    if len(parsed) > MAX_FALLBACKS:
        raise InvalidRequest(f"op-fallback lists at most {MAX_FALLBACKS} models", param="op-fallback")
    return tuple(parsed)


def parse_retries_header(value: str | None) -> int | None:
    """``op-retries: N`` (0 to :data:`MAX_RETRIES`)."""
    if value is None:
        return None
    try:
        retries = int(value.strip())
    except ValueError:
        raise InvalidRequest("op-retries must be a whole number", param="op-retries") from None
    if not 0 <= retries <= MAX_RETRIES:
        raise InvalidRequest(f"op-retries must be between 0 and {MAX_RETRIES}", param="op-retries")
    return retries


def plan_for(
    model: str, chain: FallbackChain | None, fallbacks: tuple[str, ...] | None, retries: int | None
) -> Plan:
    """The plan of a call to ``model``: its headers' fallbacks and retries, else the chain's."""
    chosen = fallbacks if fallbacks is not None else (chain.fallbacks if chain else ())
    tries = retries if retries is not None else (chain.retries if chain and chain.retries is not None else 0)
    models = tuple(dict.fromkeys((model, *chosen)))
    return Plan(models=models, retries=tries)


def backoff_s(attempt: int, retry_after_s: float | None, rng: random.Random | None = None) -> float:
    """How long to wait before try ``attempt + 1``: what the provider asked, else exponential
    back-off with full jitter (between half and all of ``base * 2**attempt``, at most the cap)."""
    if retry_after_s is not None:
        return retry_after_s
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * (1 << attempt))
    draw: float = (rng or random).random()
    return ceiling * (0.5 + 0.5 * draw)
