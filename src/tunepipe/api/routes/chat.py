"""``POST /chat/completions``: authenticate, parse, call the chat service, render.

This is the gateway's hot path, so it is a plain Starlette route rather than a FastAPI path
operation: it takes no parameters for FastAPI to solve, and skipping dependency resolution and
FastAPI's included-router matching roughly halves the framework's share of a proxied call (see
docs/performance.md). It authenticates through the same service call as the ``Caller``
dependency, and errors reach the same exception handlers. The trade-off: the route is not in the
generated OpenAPI schema, which documents tunepipe's own endpoints, not OpenAI's.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tunepipe.api.deps import app_state
from tunepipe.api.disconnect import gone, unless_gone
from tunepipe.api.json import raw_json_response, safe_headers
from tunepipe.api.sse import sse

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def create_chat_completion(request: Request) -> Response:
    state = app_state(request)
    caller = await state.auth.principal(request.headers.get("authorization"))
    prepared = await state.chat.prepare(caller, await request.body(), request.headers)
    if prepared.request.stream:
        streamed = await state.chat.stream(caller, prepared)
        headers = {**_SSE_HEADERS, **streamed.headers}
        return StreamingResponse(
            sse(streamed.events), media_type="text/event-stream", headers=safe_headers(headers)
        )
    completion = await unless_gone(request.receive, state.chat.complete(caller, prepared))
    if completion is None:  # logged as 499; nobody is left to read this
        return gone()
    # An OpenAI-compatible upstream's own bytes go back as they came (no re-encoding).
    body = completion.raw if completion.raw is not None else orjson.dumps(completion.data)
    return raw_json_response(body, headers=completion.headers)


def add_routes(app: Starlette, prefix: str) -> None:
    """Register the route under ``prefix``; call before any router is included, so that it is
    the first route the app tries."""
    app.add_route(f"{prefix}/chat/completions", create_chat_completion, methods=["POST"])
