"""Anthropic's Messages API in front of every routable model.

A request for an ``anthropic:`` model is passed through: the caller's body, only ``model``
rewritten, goes to the Anthropic upstream (with the credentials chat calls to it use), and its
answer or stream comes back byte for byte, so every Anthropic feature works, including those
chat cannot express. Any other model gets the request translated to a chat request and run
through the chat pipeline (:class:`~tunepipe.services.gateway.chat.ChatService`), so routing,
fallbacks, the cache, criteria, rate limits and logging behave as for chat; the answer is
translated back (:mod:`tunepipe.protocol.messages_response`).

Either way the log row is a chat call (the translated request, the answer as a completion) with
endpoint ``messages``, so logs, datasets and fine-tuning keep one format. A pass-through call
is admitted by the key's rate limits and logged, but takes no fallbacks, cache or criteria:
those are steps of the chat pipeline, which it does not enter.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from httpx_sse import SSEError

from tunepipe.domain.clock import now_ms
from tunepipe.domain.json_depth import check_depth
from tunepipe.domain.labels import merge_labels
from tunepipe.domain.model_ref import ModelRef, RouteKind, parse_model
from tunepipe.domain.pricing import price_for
from tunepipe.domain.projects import Principal
from tunepipe.domain.request_context import current_request_id
from tunepipe.domain.stream_assembly import StreamAssembler
from tunepipe.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from tunepipe.protocol.messages import CountTokensRequest, MessagesRequest, parse_request, to_chat_request
from tunepipe.protocol.messages_response import EventTranslator, to_message
from tunepipe.providers.anthropic.client import ANTHROPIC_VERSION
from tunepipe.providers.anthropic.translate import (
    StreamTranslator,
    from_anthropic_request,
    to_openai_completion,
)
from tunepipe.providers.http import open_response, post_json, transport_error
from tunepipe.providers.sse import aiter_events
from tunepipe.services.gateway.chat import ChatService, StreamEvent, StreamFailed
from tunepipe.services.gateway.limits import RateLimits, Ticket
from tunepipe.services.gateway.requests import (
    CLIENT_CLOSED_REQUEST,
    log_unanswered,
    read_call,
    read_options,
)
from tunepipe.services.gateway.routing import Router
from tunepipe.services.logs.recording import CallLog, RequestLogger, usage_of

log = logging.getLogger(__name__)

ENDPOINT = "messages"
PROVIDER = "Anthropic"

# Chat upstreams that take `top_k`: OpenAI-compatible servers such as vLLM (external providers,
# served fine-tunes). OpenAI and Gemini refuse it and the local engine has no such knob.
_TOP_K_KINDS = frozenset({RouteKind.EXTERNAL, RouteKind.FINE_TUNE})
# Request headers an Anthropic upstream is sent as the caller sent them.
_FORWARDED = ("anthropic-beta",)


@dataclass(frozen=True, slots=True)
class RawEvent:
    """An Anthropic upstream's stream event, relayed as it came."""

    event: str
    data: str


MessageEvent = dict[str, Any] | RawEvent | StreamFailed
"""A Messages stream event to send (a translated one, or a relayed one), or the failure that
ends the stream."""


@dataclass(slots=True)
class MessageAnswer:
    """A finished message: ``raw`` is the Anthropic upstream's own bytes when passed through."""

    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes | None = None


@dataclass(slots=True)
class MessageStream:
    events: AsyncIterator[MessageEvent]
    headers: dict[str, str]


def _decode(raw: bytes) -> dict[str, Any]:
    check_depth(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body


def _validated(body: dict[str, Any]) -> MessagesRequest:
    """A Messages request, refused in Anthropic's words (``max_tokens: Field required``)."""
    return parse_request(MessagesRequest, body)


def _message_id(call: CallLog) -> str:
    return f"msg_{call.id.replace('-', '')}"


class MessagesService:
    def __init__(
        self,
        chat: ChatService,
        router: Router,
        logger: RequestLogger,
        limits: RateLimits,
    ) -> None:
        self._chat = chat
        self._router = router
        self._logger = logger
        self._limits = limits

    async def create(
        self, principal: Principal, raw: bytes, headers: Mapping[str, str]
    ) -> MessageAnswer | MessageStream:
        """Answer a Messages request: a message, or the events of a stream (errors before the
        first event raise here, so that the client gets a status)."""
        # Read as chat's calls are, so a refused one is logged as theirs are (the body as sent).
        call, body, req, _ = await read_call(
            self._logger, principal, raw, headers, MessagesRequest, endpoint=ENDPOINT, parse=_validated
        )
        ref = parse_model(req.model)
        if ref.kind is RouteKind.ANTHROPIC:
            return await self._pass_through(principal, req, body, ref, headers)
        field = "max_completion_tokens" if ref.kind is RouteKind.OPENAI else "max_tokens"
        try:
            chat_body = to_chat_request(req, top_k=ref.kind in _TOP_K_KINDS, max_tokens_field=field)
        except InvalidRequest as exc:
            await self._logger.failure(call, exc)
            raise
        prepared = await self._chat.prepare(principal, orjson.dumps(chat_body), headers, endpoint=ENDPOINT)
        message_id = _message_id(prepared.call)
        if req.stream:
            streamed = await self._chat.stream(principal, prepared)
            translator = EventTranslator(
                message_id=message_id, model=req.model, stop_sequences=req.stop_sequences
            )
            return MessageStream(_translated(streamed.events, translator), streamed.headers)
        completion = await self._chat.complete(principal, prepared)
        message = to_message(
            completion.data, message_id=message_id, model=req.model, stop_sequences=req.stop_sequences
        )
        return MessageAnswer(message, completion.headers)

    async def count_tokens(
        self, principal: Principal, raw: bytes, headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """Anthropic's token count of a request, for ``anthropic:`` models (asked of the
        upstream); other models have no count short of running their tokenizer (a 400)."""
        body = _decode(raw)
        req = parse_request(CountTokensRequest, body)
        ref = parse_model(req.model)
        if ref.kind is not RouteKind.ANTHROPIC:
            raise InvalidRequest("Token counting is available for anthropic: models only.", param="model")
        session, url, upstream_headers = await self._upstream(principal, headers)
        data = orjson.dumps({**body, "model": ref.name})
        answer = orjson.loads(
            await post_json(session, f"{url}/count_tokens", data, upstream_headers, PROVIDER)
        )
        if not isinstance(answer, dict):
            raise UpstreamUnavailable(f"{PROVIDER} returned a token count that is not an object")
        return answer

    def _call(self, principal: Principal, body: Any, headers: Mapping[str, str]) -> CallLog:
        """The log record of a call that does not go through the chat pipeline's own."""
        options = read_options(headers)
        model = body.get("model") if isinstance(body, dict) else None
        return CallLog(
            project_id=principal.project.id,
            requested_at=now_ms(),
            model=model if isinstance(model, str) else None,
            request=body,
            enabled=options.log_request and not principal.read_only,
            metadata=merge_labels(None, options.tags),
            request_id=current_request_id(),
            endpoint=ENDPOINT,
        )

    async def _upstream(
        self, principal: Principal, headers: Mapping[str, str]
    ) -> tuple[aiohttp.ClientSession, str, dict[str, str]]:
        """The session, Anthropic Messages URL and request headers for this project: its own
        key and base URL, else the operator's, as chat's Anthropic route resolves them."""
        providers = await self._router.project_providers(principal.project.id)
        base_url, api_key = self._router.credentials(RouteKind.ANTHROPIC, providers)
        out = {
            "content-type": "application/json",
            "anthropic-version": headers.get("anthropic-version") or ANTHROPIC_VERSION,
        }
        out.update({name: headers[name] for name in _FORWARDED if headers.get(name)})
        if api_key:
            out["x-api-key"] = api_key
        return self._router.session_for(base_url), f"{base_url.rstrip('/')}/v1/messages", out

    async def _pass_through(
        self,
        principal: Principal,
        req: MessagesRequest,
        body: dict[str, Any],
        ref: ModelRef,
        headers: Mapping[str, str],
    ) -> MessageAnswer | MessageStream:
        chat_request = from_anthropic_request(body)
        chat_request["model"] = req.model
        if req.stream:
            chat_request["stream"] = True
        call = self._call(principal, chat_request, headers)
        call.price = price_for(RouteKind.ANTHROPIC, ref.name)
        ticket: Ticket | None = None
        try:
            session, url, upstream_headers = await self._upstream(principal, headers)
            ticket = await self._limits.admit(principal)
            data = orjson.dumps({**body, "model": ref.name})
            if req.stream:
                resp = await open_response(
                    session, url, data, {**upstream_headers, "accept": "text/event-stream"}, PROVIDER
                )
                relay = _Relay(self._logger, self._limits, call, ticket, ref.name)
                return MessageStream(relay.events(resp), dict(ticket.headers) if ticket else {})
            raw = await post_json(session, url, data, upstream_headers, PROVIDER)
        except BaseException as exc:  # a cancellation too: the client hung up (logged as 499)
            await self._limits.release(ticket, 0)
            await log_unanswered(self._logger, call, exc, streamed=bool(req.stream))
            raise
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            error = UpstreamUnavailable(f"{PROVIDER} returned a body that is not a message")
            await self._limits.release(ticket, 0)
            await self._logger.failure(call, error)
            raise error
        completion = to_openai_completion(message, ref.name)
        await self._limits.release(ticket, _tokens(completion))
        await self._logger.success(call, completion)
        return MessageAnswer(message, dict(ticket.headers) if ticket else {}, raw=raw)


def _tokens(completion: dict[str, Any]) -> int:
    prompt, output = usage_of(completion)
    return (prompt or 0) + (output or 0)


async def _translated(
    events: AsyncIterator[StreamEvent], translator: EventTranslator
) -> AsyncIterator[MessageEvent]:
    """A chat stream's events as Messages events; a failure ends it as it ends the chat one."""
    try:
        for event in translator.start():
            yield event
        async for chunk in events:
            if isinstance(chunk, StreamFailed):
                yield chunk
                return
            for event in translator.feed(chunk):
                yield event
        for event in translator.finish():
            yield event
    finally:
        # Closing the chat stream logs the call now (as cut short, if the client went away).
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


class _Relay:
    """An Anthropic upstream's stream relayed event by event, read on the side into the chat
    completion that is logged."""

    def __init__(
        self, logger: RequestLogger, limits: RateLimits, call: CallLog, ticket: Ticket | None, model: str
    ) -> None:
        self._logger = logger
        self._limits = limits
        self._call = call
        self._ticket = ticket
        self._translator = StreamTranslator(model, include_usage=True)
        self._assembler = StreamAssembler()

    def _read(self, event: RawEvent) -> None:
        """Assemble the completion; raises UpstreamError on Anthropic's ``error`` event."""
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return
        if isinstance(data, dict):
            for chunk in self._translator.feed(event.event if event.event != "message" else "", data):
                self._assembler.feed(chunk)

    async def events(self, resp: aiohttp.ClientResponse) -> AsyncIterator[MessageEvent]:
        failure: str | None = "client disconnected before the stream ended"
        status = CLIENT_CLOSED_REQUEST
        try:
            async for sse in aiter_events(resp):
                if not sse.data:
                    continue
                event = RawEvent(sse.event, sse.data)
                yield event
                self._read(event)
            failure, status = None, 200
        except UpstreamError as exc:  # the error event itself has been relayed already
            failure, status = f"{PROVIDER} broke off: {exc.message}", exc.upstream_status or exc.status_code
        except (TimeoutError, aiohttp.ClientError, SSEError) as exc:
            error = (
                UpstreamUnavailable(f"{PROVIDER} did not answer with an event stream: {exc}")
                if isinstance(exc, SSEError)
                else transport_error(exc, PROVIDER)
            )
            failure, status = f"{PROVIDER} broke off: {error.message}", error.status_code
            yield StreamFailed(error)
        finally:
            resp.release()
            completion = self._assembler.completion()
            await self._limits.release(self._ticket, _tokens(completion))
            await self._logger.success(
                self._call, completion, streamed=True, error_message=failure, status_code=status
            )
