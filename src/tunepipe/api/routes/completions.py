"""``POST /completions`` (legacy completions): authenticate, call the service, render its JSON
or its chunks as server-sent events.

A plain Starlette route, as ``/chat/completions`` is (see :mod:`tunepipe.api.routes.chat`).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tunepipe.api.deps import app_state
from tunepipe.api.disconnect import gone, unless_gone
from tunepipe.api.json import raw_json_response, safe_headers
from tunepipe.api.sse import sse
from tunepipe.services.gateway.endpoints import Events

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def create_completion(request: Request) -> Response:
    state = app_state(request)
    caller = await state.auth.principal(request.headers.get("authorization"))
    result = await unless_gone(
        request.receive, state.completions.create(caller, await request.body(), request.headers)
    )
    if result is None:  # logged as 499
        return gone()
    if isinstance(result, Events):
        headers = {**_SSE_HEADERS, **result.headers}
        return StreamingResponse(
            sse(result.events), media_type="text/event-stream", headers=safe_headers(headers)
        )
    return raw_json_response(result.body, headers=result.headers)


def add_routes(app: Starlette, prefix: str) -> None:
    app.add_route(f"{prefix}/completions", create_completion, methods=["POST"])
