"""``POST /messages`` (and ``/messages/count_tokens``): Anthropic's Messages API, for any model.

A plain Starlette route, as chat's is (it is as hot a path). Anthropic's SDK sends its key as
``x-api-key``; ``Authorization: Bearer`` works too. Errors keep Anthropic's body on these paths
(``{"type": "error", "error": {type, message}}``, plus OpenPipe's ``message``/``code``), since
that is what an Anthropic client parses; a stream that breaks off ends with one ``error`` event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tunepipe.api.deps import app_state
from tunepipe.api.disconnect import gone, unless_gone
from tunepipe.api.json import json_response, raw_json_response, safe_headers
from tunepipe.errors import TunepipeError
from tunepipe.protocol.messages import error_body
from tunepipe.services.gateway.chat import StreamFailed
from tunepipe.services.gateway.messages import MessageEvent, MessageStream, RawEvent

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _authorization(headers: Headers) -> str | None:
    key = headers.get("x-api-key")
    return f"Bearer {key.strip()}" if key and key.strip() else headers.get("authorization")


def _error(exc: TunepipeError) -> Response:
    return json_response(error_body(exc), status_code=exc.status_code, headers=exc.headers)


def _frame(event: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


async def _sse(events: AsyncIterator[MessageEvent]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            if isinstance(event, StreamFailed):
                yield _frame("error", orjson.dumps(error_body(event.error)).decode())
                return
            if isinstance(event, RawEvent):
                yield _frame(event.event, event.data)
            else:
                yield _frame(str(event["type"]), orjson.dumps(event).decode())
    finally:
        # A client that went away closes this generator; close the service's too, so the call
        # is logged (as cut short) now.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def create_message(request: Request) -> Response:
    state = app_state(request)
    try:
        caller = await state.auth.principal(_authorization(request.headers))
        result = await unless_gone(
            request.receive, state.messages.create(caller, await request.body(), request.headers)
        )
    except TunepipeError as exc:
        return _error(exc)
    if result is None:  # logged as 499
        return gone()
    if isinstance(result, MessageStream):
        headers = {**_SSE_HEADERS, **result.headers}
        return StreamingResponse(
            _sse(result.events), media_type="text/event-stream", headers=safe_headers(headers)
        )
    if result.raw is not None:
        return raw_json_response(result.raw, headers=result.headers)
    return json_response(result.body, headers=result.headers)


async def count_tokens(request: Request) -> Response:
    state = app_state(request)
    try:
        caller = await state.auth.principal(_authorization(request.headers))
        return json_response(await state.messages.count_tokens(caller, await request.body(), request.headers))
    except TunepipeError as exc:
        return _error(exc)


def add_routes(app: Starlette, prefix: str) -> None:
    """Register the routes under ``prefix``, before any router is included (as chat's)."""
    app.add_route(f"{prefix}/messages", create_message, methods=["POST"])
    app.add_route(f"{prefix}/messages/count_tokens", count_tokens, methods=["POST"])
