"""Responses calls to OpenAI models go to OpenAI's own ``/responses``, body and answer as they
are, so everything OpenAI's Responses API does (built-in tools, reasoning items, its own stored
conversations) keeps working through the gateway.

The call is routed like a chat call to the same model (the project's OpenAI key or base URL,
else the environment's; read-only keys refused), counted against the key's rate limits, and
logged with endpoint ``responses``. The final response object goes to ``on_final`` before the
client sees it, for the service to remember whose it is; :meth:`OpenAIResponses.relay` then
reads or deletes it at OpenAI. The log keeps the call as chat completions (request and
answer translated where they translate), so a logged Responses call can join a dataset like any
other.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from httpx_sse import SSEError

from tunepipe.domain.clock import now_ms
from tunepipe.domain.labels import merge_labels
from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.domain.request_context import current_request_id
from tunepipe.errors import InvalidRequest, PermissionDenied, TunepipeError, UpstreamError
from tunepipe.protocol.responses import ResponsesRequest, chat_body, chat_view
from tunepipe.providers.http import (
    error_from_response,
    is_guarded,
    open_response,
    post_json,
    transport_error,
)
from tunepipe.providers.sse import aiter_events
from tunepipe.services.gateway.limits import RateLimits, Ticket
from tunepipe.services.gateway.requests import log_unanswered, read_options
from tunepipe.services.gateway.routing import Router
from tunepipe.services.logs.recording import CallLog, RequestLogger, usage_of

log = logging.getLogger(__name__)

_PROVIDER = "OpenAI"
_FINAL = ("response.completed", "response.incomplete", "response.failed")

OnFinal = Callable[[dict[str, Any]], Awaitable[None]]
"""Told the upstream's final response object before the client is."""


@dataclass(frozen=True, slots=True)
class RawEvent:
    """An upstream server-sent event, relayed as it came."""

    event: str | None
    data: str


@dataclass(slots=True)
class _Pass:
    call: CallLog
    ticket: Ticket | None
    headers: dict[str, str] = field(default_factory=dict)
    upstream_model: str = ""


def _logged_request(req: ResponsesRequest, body: dict[str, Any]) -> dict[str, Any]:
    """The request as the log keeps it: as chat completions where it translates."""
    try:
        return chat_body(req, [], verbosity=True)[0]
    except InvalidRequest:
        return body


def _tokens(completion: dict[str, Any]) -> int:
    prompt, output = usage_of(completion)
    return (prompt or 0) + (output or 0)


class OpenAIResponses:
    def __init__(
        self,
        router: Router,
        logger: RequestLogger,
        limits: RateLimits,
    ) -> None:
        self._router = router
        self._logger = logger
        self._limits = limits

    async def _open(
        self, principal: Principal, req: ResponsesRequest, body: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[_Pass, aiohttp.ClientSession, str, dict[str, str]]:
        """Route, admit and begin the log record: (the call, the session, the URL, the upstream
        headers)."""
        options = read_options(headers)
        call = CallLog(
            project_id=principal.project.id,
            requested_at=now_ms(),
            model=req.model,
            request=_logged_request(req, body),
            enabled=options.log_request and not principal.read_only,
            metadata=merge_labels(req.metadata, options.tags),
            endpoint="responses",
            request_id=current_request_id(),
        )
        state = _Pass(call, None)
        try:
            ref = parse_model(req.model)
            state.upstream_model = ref.name
            route = await self._router.resolve(principal, ref)
            call.price = route.price
            base_url, api_key = self._router.credentials(
                RouteKind.OPENAI, await self._router.project_providers(principal.project.id)
            )
            state.ticket = await self._limits.admit(principal)
        except TunepipeError as exc:
            await self._logger.failure(call, exc)
            raise
        state.headers = dict(state.ticket.headers) if state.ticket is not None else {}
        state.headers["op-model"] = req.model
        upstream = {"Content-Type": "application/json"}
        if api_key:
            upstream["Authorization"] = f"Bearer {api_key}"
        return state, self._router.session_for(base_url), f"{base_url.rstrip('/')}/responses", upstream

    async def create(
        self,
        principal: Principal,
        req: ResponsesRequest,
        body: dict[str, Any],
        headers: Mapping[str, str],
        on_final: OnFinal,
    ) -> tuple[bytes, dict[str, str]]:
        """A non-streamed call: the upstream's bytes and the response headers."""
        state, session, url, upstream = await self._open(principal, req, body, headers)
        out = {**body, "model": state.upstream_model}
        try:
            raw = await post_json(session, url, orjson.dumps(out), upstream, _PROVIDER)
        except BaseException as exc:  # a cancellation too: the client hung up (logged as 499)
            await self._limits.release(state.ticket, 0)
            await log_unanswered(self._logger, state.call, exc)
            raise
        try:
            data = orjson.loads(raw)
            view = chat_view(data)
        except (orjson.JSONDecodeError, AttributeError):
            data, view = None, {"raw": raw.decode("utf-8", "replace")}
        await self._limits.release(state.ticket, _tokens(view))
        await self._logger.success(state.call, view)
        if isinstance(data, dict):
            await on_final(data)
        return raw, state.headers

    async def relay(self, principal: Principal, method: str, path: str, query: str = "") -> bytes:
        """``GET``/``DELETE`` of a response OpenAI stores: its answer as it came (errors mapped
        as for any upstream call)."""
        if principal.read_only:
            raise PermissionDenied("Read-only OpenPipe API keys cannot access the base OpenAI API")
        base_url, api_key = self._router.credentials(
            RouteKind.OPENAI, await self._router.project_providers(principal.project.id)
        )
        url = f"{base_url.rstrip('/')}{path}" + (f"?{query}" if query else "")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        session = self._router.session_for(base_url)
        guarded = is_guarded(session)
        try:
            async with session.request(method, url, headers=headers) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise error_from_response(resp.status, raw, _PROVIDER, resp.headers, guarded=guarded)
                return raw
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, _PROVIDER, guarded=guarded) from exc

    async def stream(
        self,
        principal: Principal,
        req: ResponsesRequest,
        body: dict[str, Any],
        headers: Mapping[str, str],
        on_final: OnFinal,
    ) -> tuple[AsyncIterator[RawEvent], dict[str, str]]:
        """Open the upstream stream (errors raise here, before anything is sent)."""
        state, session, url, upstream = await self._open(principal, req, body, headers)
        upstream["Accept"] = "text/event-stream"
        out = {**body, "model": state.upstream_model}
        try:
            resp = await open_response(session, url, orjson.dumps(out), upstream, _PROVIDER)
        except BaseException as exc:
            await self._limits.release(state.ticket, 0)
            await log_unanswered(self._logger, state.call, exc, streamed=True)
            raise
        return self._relay(state, resp, on_final), state.headers

    async def _relay(
        self, state: _Pass, resp: aiohttp.ClientResponse, on_final: OnFinal
    ) -> AsyncIterator[RawEvent]:
        final: dict[str, Any] | None = None
        failure: str | None = "client disconnected before the stream ended"
        status, last_seq = 499, -1
        try:
            async for event in aiter_events(resp):
                try:
                    data = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    data = None
                if isinstance(data, dict):
                    last_seq = data.get("sequence_number", last_seq)
                    if data.get("type") in _FINAL and isinstance(data.get("response"), dict):
                        final = data["response"]
                        # Before the client hears the end: a GET right after must find it.
                        await on_final(final)
                yield RawEvent(event.event or None, event.data)
            failure, status = None, 200
        except (TimeoutError, aiohttp.ClientError, SSEError) as exc:
            error: UpstreamError = transport_error(exc, _PROVIDER)
            failure, status = f"{_PROVIDER} broke off: {error.message}", error.status_code
            payload = {
                "type": "error",
                "sequence_number": last_seq + 1,
                "code": "server_error",
                "message": error.message,
                "param": None,
            }
            yield RawEvent("error", orjson.dumps(payload).decode())
        finally:
            resp.release()
            view = chat_view(final) if final is not None else {}
            await self._limits.release(state.ticket, _tokens(view))
            await self._logger.success(
                state.call, view, streamed=True, error_message=failure, status_code=status
            )
