"""The chat-completions pipeline: admit → (criteria looked up) → plan → cache → call with retries
and fallbacks → store → judge → log.

One step a module: rate limits (:mod:`.limits`), the response cache (:mod:`.cache`), retries,
fallbacks and the circuit breaker (:mod:`.calls`), criteria (:mod:`.criteria`); mixture of
agents is a provider the router builds, invisible here. A step the call did not ask for costs
an attribute read. The caller's JSON is forwarded as sent (only ``model`` is rewritten and
OpenPipe-only fields are removed), so OpenAI parameters tunepipe does not know still reach the
provider. Streams are forwarded chunk by chunk and assembled on the side for the log and the
cache; a cache hit on a stream is replayed as chunks.

The service returns values, not bytes: a :class:`~tunepipe.domain.completions.Completion`, or
for a stream :class:`Streamed` (the chunks, ending either normally or with one
:class:`StreamFailed`, and the response headers). Framing them as HTTP is the API layer's job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tunepipe.domain.cache_keys import CacheStatus
from tunepipe.domain.completions import Completion
from tunepipe.domain.criteria import Criterion
from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.domain.routing import Plan, plan_for
from tunepipe.domain.stream_assembly import StreamAssembler
from tunepipe.domain.stream_replay import replay
from tunepipe.errors import TunepipeError, UpstreamError
from tunepipe.services.gateway.cache import Lookup, ResponseCache
from tunepipe.services.gateway.calls import Calls, Outcome
from tunepipe.services.gateway.criteria import CriteriaStep, attach, results_chunk
from tunepipe.services.gateway.judge import JudgeLog
from tunepipe.services.gateway.limits import RateLimits, Ticket
from tunepipe.services.gateway.requests import (
    CLIENT_CLOSED_REQUEST,
    Prepared,
    client_gone,
    log_unanswered,
    prepare,
)
from tunepipe.services.gateway.routing import Route, Router
from tunepipe.services.logs.recording import CallLog, RequestLogger, usage_of
from tunepipe.telemetry.metrics import count_cache

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The last event of a stream that broke off after it started: the client gets this error."""

    error: TunepipeError


StreamEvent = dict[str, Any] | StreamFailed


@dataclass(slots=True)
class Streamed:
    events: AsyncIterator[StreamEvent]
    headers: dict[str, str]


@dataclass(slots=True)
class _Call:
    """What one call has gathered on its way through the steps."""

    prepared: Prepared
    ticket: Ticket | None = None
    criteria: list[Criterion] = field(default_factory=list)
    lookup: Lookup | None = None
    outcome: Outcome = field(default_factory=Outcome)
    requested: str = ""

    def headers(self) -> dict[str, str]:
        out = dict(self.ticket.headers) if self.ticket is not None else {}
        out["op-cache-status"] = (self.lookup.status if self.lookup is not None else CacheStatus.BYPASS).value
        if self.outcome.model is not None:
            out["op-model"] = self.outcome.model
            out["op-attempts"] = str(len(self.outcome.attempts))
        return out

    def storable(self) -> bool:
        """An answer the cache may keep: the requested model's own."""
        return self.lookup is not None and self.outcome.model == self.requested


def upstream_body(body: dict[str, Any], route: Route, *, stream: bool) -> dict[str, Any]:
    """The caller's body as the provider should see it."""
    out = dict(body)
    out["model"] = route.ref.name
    # `metadata` labels the log; OpenAI accepts it only with `store: true` (then it also stores).
    if not (route.ref.kind is RouteKind.OPENAI and body.get("store") is True):
        out.pop("metadata", None)
        out.pop("store", None)
    if stream:
        # Always ask for usage so streamed calls are logged with tokens and cost.
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True
        out["stream_options"] = options
    return out


def _plain(body: dict[str, Any], route: Route) -> dict[str, Any]:
    return upstream_body(body, route, stream=False)


def _streaming(body: dict[str, Any], route: Route) -> dict[str, Any]:
    return upstream_body(body, route, stream=True)


def _tokens(completion: dict[str, Any] | None) -> int:
    prompt, output = usage_of(completion)
    return (prompt or 0) + (output or 0)


class ChatService:
    def __init__(
        self,
        router: Router,
        logger: RequestLogger,
        criteria: CriteriaStep,
        calls: Calls,
        cache: ResponseCache,
        limits: RateLimits,
    ) -> None:
        self._router = router
        self._logger = logger
        self._criteria = criteria
        self._calls = calls
        self._cache = cache
        self._limits = limits

    async def _begin(self, principal: Principal, state: _Call) -> None:
        """The steps before the upstream: admission, criteria, the cache lookup (waiting for an
        identical call in flight, or leading the ones that follow)."""
        prepared = state.prepared
        state.ticket = await self._limits.admit(principal)
        opts = prepared.options
        state.criteria = await self._criteria.resolve(principal, opts.criteria)
        if opts.cache is not None:
            route = await self._router.resolve(principal, parse_model(state.requested))
            prepared.call.price = route.price
            state.lookup = await self._cache.lookup(
                principal, state.requested, route.identity, prepared.body, opts.cache, opts.cache_ttl_s
            )
            await self._cache.follow(state.lookup)
            count_cache(state.lookup.status.value)
            self._cache.lead(state.lookup)

    async def _plan(self, principal: Principal, state: _Call) -> Plan:
        opts = state.prepared.options
        chain = None
        if opts.fallbacks is None or opts.retries is None:
            chain = await self._router.fallback_chain(principal, state.requested)
        return plan_for(state.requested, chain, opts.fallbacks, opts.retries)

    async def prepare(
        self, principal: Principal, raw: bytes, headers: Mapping[str, str], *, endpoint: str | None = None
    ) -> Prepared:
        """Parse and validate; a failure here is logged (when logging is on) and raised."""
        return await prepare(self._logger, principal, raw, headers, endpoint=endpoint)

    def _judge_log(self, call: CallLog) -> JudgeLog | None:
        """Judges' calls are logged under the call they judge, when that call is logged."""
        return JudgeLog(parent_id=call.id, metadata=dict(call.metadata)) if call.enabled else None

    async def _abandon(self, state: _Call) -> None:
        """A call that ended without an answer: waiting identical calls are told, its slot freed."""
        if state.lookup is not None:
            self._cache.land(state.lookup, None)
        await self._limits.release(state.ticket, 0)

    async def _failed(self, state: _Call, call: CallLog, exc: BaseException, *, streamed: bool) -> None:
        """A call that ended before its answer: a refusal, an upstream's error, or a client
        that hung up (the task cancelled: ``api/disconnect.py``) is logged; a bug is not."""
        call.attempts = state.outcome.attempts
        await self._abandon(state)
        await log_unanswered(self._logger, call, exc, streamed=streamed)

    async def complete(self, principal: Principal, prepared: Prepared) -> Completion:
        call = prepared.call
        state = _Call(prepared, requested=prepared.request.model)
        try:
            await self._begin(principal, state)
            if state.lookup is not None and state.lookup.hit is not None:
                call.cache_hit = True
                result = Completion(state.lookup.hit, raw=state.lookup.hit_json)
            else:
                plan = await self._plan(principal, state)
                result = await self._calls.complete(principal, plan, prepared.body, _plain, state.outcome)
                call.price = state.outcome.route.price if state.outcome.route else None
                if state.lookup is not None:
                    self._cache.land(state.lookup, result.data if state.storable() else None)
                    if state.storable():
                        await self._cache.save(principal, state.requested, state.lookup, result.data)
        except BaseException as exc:
            # A cancellation is the client hanging up: the upstream request went with the task.
            await self._failed(state, call, exc, streamed=False)
            raise
        await self._limits.release(state.ticket, _tokens(result.data))
        call.answered_by, call.attempts = state.outcome.model, state.outcome.attempts
        if state.criteria:
            try:
                results = await self._criteria.judge_choices(
                    principal, state.criteria, prepared.body, result.data, log=self._judge_log(call)
                )
            except asyncio.CancelledError:  # answered, but the client left while it was judged
                gone = client_gone("the answer was judged")
                await self._logger.success(
                    call,
                    result.data,
                    raw=result.raw,
                    cost=result.cost,
                    error_message=gone.message,
                    status_code=CLIENT_CLOSED_REQUEST,
                )
                raise
            call.criteria = attach(result.data, results)
            # Changed: the upstream's bytes no longer match.
            result = Completion(result.data, cost=result.cost)
        result.headers = state.headers()
        await self._logger.success(call, result.data, raw=result.raw, cost=result.cost)
        return result

    async def stream(self, principal: Principal, prepared: Prepared) -> Streamed:
        """Open the upstream stream (errors raise here, before anything is sent) and return the
        events for the client: the chunks, then a :class:`StreamFailed` if it broke off."""
        call = prepared.call
        state = _Call(prepared, requested=prepared.request.model)
        try:
            await self._begin(principal, state)
            if state.lookup is not None and state.lookup.hit is not None:
                call.cache_hit = True
                chunks = _replayed(state.lookup.hit)
            else:
                plan = await self._plan(principal, state)
                chunks = await self._calls.open_stream(
                    principal, plan, prepared.body, _streaming, state.outcome
                )
                call.price = state.outcome.route.price if state.outcome.route else None
        except BaseException as exc:
            await self._failed(state, call, exc, streamed=True)
            raise
        return Streamed(self._relay(principal, state, chunks), state.headers())

    async def _relay(
        self, principal: Principal, state: _Call, chunks: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[StreamEvent]:
        prepared, call = state.prepared, state.prepared.call
        options = prepared.request.stream_options
        include_usage = bool(options and options.include_usage)
        assembler = StreamAssembler()
        failure: str | None = "client disconnected before the stream ended"
        status = CLIENT_CLOSED_REQUEST
        judged: dict[str, Any] | None = None
        try:
            async for chunk in chunks:
                assembler.feed(chunk)
                if not include_usage:
                    if not chunk.get("choices") and chunk.get("usage"):
                        continue
                    chunk.pop("usage", None)
                yield chunk
            failure, status = None, 200
            if state.criteria:
                judged = assembler.completion()
                yield await self._judge_stream(principal, call, state.criteria, judged)
        except UpstreamError as exc:
            failure, status = (
                f"{state.outcome.model or state.requested} broke off: {exc.message}",
                exc.status_code,
            )
            yield StreamFailed(exc)
        except Exception as exc:
            log.exception("stream relay failed")
            failure, status = f"stream failed: {exc.__class__.__name__}", 500
            yield StreamFailed(TunepipeError(failure))
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            completion = judged or assembler.completion()
            if state.lookup is not None and not call.cache_hit:
                answer = assembler.completion() if status == 200 and state.storable() else None
                self._cache.land(state.lookup, answer)
                if answer is not None:
                    await self._cache.save(principal, state.requested, state.lookup, answer)
            await self._limits.release(state.ticket, _tokens(completion))
            call.answered_by, call.attempts = state.outcome.model, state.outcome.attempts
            await self._logger.success(
                call,
                completion,
                streamed=True,
                error_message=failure,
                status_code=status,
                cost=(completion.get("moa") or {}).get("cost"),
            )

    async def _judge_stream(
        self, principal: Principal, call: CallLog, criteria: list[Criterion], completion: dict[str, Any]
    ) -> dict[str, Any]:
        """Judge the assembled stream; the chunk that carries the results (the completion gets
        them too, for the log)."""
        body = call.request if isinstance(call.request, dict) else {}
        results = await self._criteria.judge_choices(
            principal, criteria, body, completion, log=self._judge_log(call)
        )
        chunk = results_chunk(completion, results)
        for choice in completion.get("choices") or []:
            found = results.get(int(choice.get("index", 0)), [])
            choice["criteria_results"] = {r.name: r.wire() for r in found}
            call.criteria.extend((int(choice.get("index", 0)), r) for r in found)
        return chunk


async def _replayed(completion: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """A cached answer as the chunks of a stream, usage included (the relay drops it unless the
    caller asked for it, as for a live stream)."""
    for chunk in replay(completion, include_usage=True):
        yield chunk
