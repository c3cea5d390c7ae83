"""The Responses API: ``POST /responses``, ``GET``/``DELETE /responses/{id}`` and ``GET
/responses/{id}/input_items``.

Plain Starlette routes like ``/chat/completions`` (a hot path, and OpenAI's wire rather than
tunepipe's own API, so outside the OpenAPI schema). Streams are framed as OpenAI frames them:
each event an ``event: <type>`` line and its JSON, no ``[DONE]``; events passed through from
OpenAI keep their own names and data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tunepipe.api.deps import app_state
from tunepipe.api.disconnect import gone, unless_gone
from tunepipe.api.json import json_response, raw_json_response, safe_headers
from tunepipe.errors import InvalidRequest
from tunepipe.services.responses.passthrough import RawEvent
from tunepipe.services.responses.service import Created

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_MAX_PAGE = 100


async def _framed(events: AsyncIterator[dict[str, object] | RawEvent]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            if isinstance(event, RawEvent):
                head = f"event: {event.event}\n".encode() if event.event else b""
                yield head + b"data: " + event.data.encode() + b"\n\n"
            else:
                yield f"event: {event['type']}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n"
    finally:
        # A client that went away closes this generator; close the service's too, so the call is
        # logged (as cut short) now.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _json(found: dict[str, Any] | bytes) -> Response:
    """A value, or an upstream's own bytes as they came."""
    return raw_json_response(found) if isinstance(found, bytes) else json_response(found)


async def create_response(request: Request) -> Response:
    state = app_state(request)
    caller = await state.auth.principal(request.headers.get("authorization"))
    created = await unless_gone(
        request.receive, state.responses.create(caller, await request.body(), request.headers)
    )
    if created is None:  # logged as 499
        return gone()
    if isinstance(created, Created):
        body = created.raw if created.raw is not None else orjson.dumps(created.data)
        return raw_json_response(body, headers=created.headers)
    headers = {**_SSE_HEADERS, **created.headers}
    return StreamingResponse(
        _framed(created.events), media_type="text/event-stream", headers=safe_headers(headers)
    )


async def get_response(request: Request) -> Response:
    state = app_state(request)
    caller = await state.auth.principal(request.headers.get("authorization"))
    return _json(await state.responses.get(caller, request.path_params["response_id"]))


async def delete_response(request: Request) -> Response:
    state = app_state(request)
    caller = await state.auth.writer(request.headers.get("authorization"))
    return _json(await state.responses.delete(caller, request.path_params["response_id"]))


async def list_input_items(request: Request) -> Response:
    state = app_state(request)
    caller = await state.auth.principal(request.headers.get("authorization"))
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError as exc:
        raise InvalidRequest("`limit` must be an integer", param="limit") from exc
    if not 1 <= limit <= _MAX_PAGE:
        raise InvalidRequest(f"`limit` must be between 1 and {_MAX_PAGE}", param="limit")
    page = await state.responses.input_items(
        caller, request.path_params["response_id"], order=order, limit=limit, after=query.get("after")
    )
    return _json(page)


def add_routes(app: Starlette, prefix: str) -> None:
    """Register the routes under ``prefix`` (before any router is included, like chat's)."""
    app.add_route(f"{prefix}/responses", create_response, methods=["POST"])
    app.add_route(f"{prefix}/responses/{{response_id}}", get_response, methods=["GET"])
    app.add_route(f"{prefix}/responses/{{response_id}}", delete_response, methods=["DELETE"])
    app.add_route(f"{prefix}/responses/{{response_id}}/input_items", list_input_items, methods=["GET"])
