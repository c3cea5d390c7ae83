"""Calling the upstream: retries, fallbacks and a circuit breaker (beyond OpenPipe, whose
fallback lived only in its SDK).

A call follows its :class:`~tunepipe.domain.routing.Plan`: its model, then each fallback; each
model gets the plan's retries after a failure worth retrying (429, 5xx, timeouts, broken
connections), waiting what the provider asked (``Retry-After``) or an exponential back-off with
jitter (tenacity), the waits of one call capped in total. Any other failure (a 400 for a bad
request, a 401) is the answer at once: another model would not make the request right.

A stream falls back only before its first content: the first chunks are read ahead until one
carries content (or the stream ends); a failure before that tries the next model, a failure
after it reaches the client as an error event (the log says which model broke).

The :class:`Breaker` remembers, per project and model, failures worth retrying in a row: after
``threshold`` of them the model is skipped by chains for ``cooldown_s`` (the last model of a
chain is always tried: something must answer). Its state is per process, shown by
``GET /routing``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from tunepipe.domain.completions import Completion
from tunepipe.domain.model_ref import parse_model
from tunepipe.domain.projects import Principal
from tunepipe.domain.routing import Attempt, Plan, backoff_s
from tunepipe.errors import TunepipeError, UpstreamError
from tunepipe.services.gateway.routing import Route, Router
from tunepipe.telemetry.metrics import count_upstream_error

T = TypeVar("T")

UpstreamBody = Callable[[dict[str, Any], Route], dict[str, Any]]
"""Builds the body a route's provider is sent from the caller's body."""


@dataclass(slots=True)
class _Health:
    failures: int = 0
    open_until: float = 0.0
    last_error: str | None = None


class Breaker:
    def __init__(
        self, *, threshold: int = 3, cooldown_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ):
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._health: dict[tuple[str, str], _Health] = {}

    def cooling(self, project_id: str, model: str) -> bool:
        health = self._health.get((project_id, model))
        return health is not None and health.open_until > self._clock()

    def succeeded(self, project_id: str, model: str) -> None:
        if self._health:  # nothing to reset on the hot path when nothing ever failed
            self._health.pop((project_id, model), None)

    def failed(self, project_id: str, model: str, error: str) -> None:
        health = self._health.setdefault((project_id, model), _Health())
        health.failures += 1
        health.last_error = error
        if health.failures >= self._threshold:
            health.open_until = self._clock() + self._cooldown_s

    def state(self, project_id: str) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {
                "model": model,
                "state": "cooling" if h.open_until > now else "failing",
                "consecutive_failures": h.failures,
                "cooldown_remaining_s": round(max(0.0, h.open_until - now), 3),
                "last_error": h.last_error,
            }
            for (project, model), h in sorted(self._health.items())
            if project == project_id
        ]


@dataclass(slots=True)
class Outcome:
    """How a call went: the route that answered and every try made."""

    route: Route | None = None
    model: str | None = None
    attempts: list[Attempt] = field(default_factory=list)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.retryable


class Calls:
    def __init__(self, router: Router, breaker: Breaker, *, max_total_wait_s: float) -> None:
        self._router = router
        self.breaker = breaker
        self._max_wait_s = max_total_wait_s

    def _retrying(self, plan: Plan) -> AsyncRetrying:
        cap = self._max_wait_s

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = exc.retry_after_s if isinstance(exc, UpstreamError) else None
            return max(0.0, min(backoff_s(state.attempt_number - 1, asked), cap - state.idle_for))

        def stop(state: RetryCallState) -> bool:
            return bool(stop_after_attempt(plan.retries + 1)(state)) or state.idle_for >= cap

        return AsyncRetrying(retry=retry_if_exception(_retryable), wait=wait, stop=stop, reraise=True)

    async def _routes(
        self, principal: Principal, plan: Plan, outcome: Outcome
    ) -> AsyncIterator[tuple[str, Route]]:
        """The plan's routes worth trying: a model cooling down is skipped (unless it is the last
        resort); a fallback that cannot be routed is recorded and skipped, the requested model's
        routing error is the caller's (an unknown model is a 404, not a reason to fall back)."""
        for i, model in enumerate(plan.models):
            last = i == len(plan.models) - 1
            if not last and len(plan.models) > 1 and self.breaker.cooling(principal.project.id, model):
                outcome.attempts.append(
                    Attempt(model, 503, 0, "skipped: cooling down after repeated failures")
                )
                continue
            try:
                route = await self._router.resolve(principal, parse_model(model))
            except TunepipeError as exc:
                if i == 0:
                    raise
                outcome.attempts.append(Attempt(model, exc.status_code, 0, exc.message))
                continue
            yield model, route

    async def complete(
        self, principal: Principal, plan: Plan, body: dict[str, Any], upstream: UpstreamBody, outcome: Outcome
    ) -> Completion:
        """The first answer the plan's models give; raises the last failure.

        The first try of the requested model takes no retry machinery, whatever the plan (most
        calls end there); only when it fails and the plan allows more does the loop start, with
        that failure replayed as its first attempt so the waits follow from it."""
        first = plan.models[0]
        simple = len(plan.models) == 1 and plan.retries == 0
        failed: list[UpstreamError] = []
        if simple or not self.breaker.cooling(principal.project.id, first):
            route = outcome.route = await self._router.resolve(principal, parse_model(first))
            try:
                result = await self._try(
                    principal, first, outcome, route.provider.complete(upstream(body, route))
                )
            except UpstreamError as exc:
                if simple or not exc.retryable:
                    raise
                failed.append(exc)
            else:
                outcome.model = first
                return result
        last: TunepipeError | None = failed[0] if failed else None
        async for model, route in self._routes(principal, plan, outcome):
            outcome.route = route  # the route of the answer, or of the last failure
            replay = failed if model == first else []
            try:
                async for attempt in self._retrying(plan):
                    with attempt:
                        if replay:
                            raise replay.pop()
                        result = await self._try(
                            principal, model, outcome, route.provider.complete(upstream(body, route))
                        )
                outcome.model = model
                return result
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                last = exc
        raise last or TunepipeError("No model of the fallback chain could be called")

    async def open_stream(
        self, principal: Principal, plan: Plan, body: dict[str, Any], upstream: UpstreamBody, outcome: Outcome
    ) -> AsyncIterator[dict[str, Any]]:
        """The first stream that reaches content; its chunks (those read ahead first)."""
        if len(plan.models) == 1 and plan.retries == 0:  # nothing to fall back to: no read-ahead
            route = outcome.route = await self._router.resolve(principal, parse_model(plan.models[0]))
            chunks = await self._try(
                principal, plan.models[0], outcome, route.provider.open_stream(upstream(body, route))
            )
            outcome.model = plan.models[0]
            return chunks
        last: TunepipeError | None = None
        async for model, route in self._routes(principal, plan, outcome):
            outcome.route = route
            try:
                async for attempt in self._retrying(plan):
                    with attempt:
                        chunks = await self._try(
                            principal, model, outcome, _opened(route, upstream(body, route))
                        )
                outcome.model = model
                return chunks
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                last = exc
        raise last or TunepipeError("No model of the fallback chain could be called")

    async def _try(self, principal: Principal, model: str, outcome: Outcome, call: Awaitable[T]) -> T:
        started = time.monotonic()
        try:
            result = await call
        except TunepipeError as exc:
            status = exc.upstream_status if isinstance(exc, UpstreamError) and exc.upstream_status else None
            outcome.attempts.append(Attempt(model, status or exc.status_code, _ms(started), exc.message))
            if isinstance(exc, UpstreamError):
                kind = outcome.route.ref.kind.value if outcome.route is not None else "unknown"
                count_upstream_error(kind, status or exc.status_code)
            if not isinstance(exc, UpstreamError) or exc.retryable:  # a bad request says nothing of the model
                self.breaker.failed(principal.project.id, model, exc.message)
            raise
        outcome.attempts.append(Attempt(model, 200, _ms(started)))
        self.breaker.succeeded(principal.project.id, model)
        return result


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _has_content(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if (
            delta.get("content")
            or delta.get("tool_calls")
            or delta.get("function_call")
            or delta.get("refusal")
        ):
            return True
        if choice.get("finish_reason"):
            return True
    return False


async def _opened(route: Route, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Open the stream and read it up to its first content; failures until then raise here."""
    chunks = await route.provider.open_stream(body)
    ahead: list[dict[str, Any]] = []
    try:
        async for chunk in chunks:
            ahead.append(chunk)
            if _has_content(chunk):
                break
    except BaseException:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return _resume(ahead, chunks)


async def _resume(
    ahead: list[dict[str, Any]], rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    try:
        for chunk in ahead:
            yield chunk
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
