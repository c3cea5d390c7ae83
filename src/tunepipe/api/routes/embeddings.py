"""``POST /embeddings``: authenticate, call the embeddings service, return its JSON.

A plain Starlette route, as ``/chat/completions`` is (see :mod:`tunepipe.api.routes.chat`): it is
OpenAI's endpoint, not one of tunepipe's own, so it stays out of the OpenAPI schema and skips
FastAPI's dependency resolution.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from tunepipe.api.deps import app_state
from tunepipe.api.disconnect import gone, unless_gone
from tunepipe.api.json import raw_json_response


async def create_embeddings(request: Request) -> Response:
    state = app_state(request)
    caller = await state.auth.principal(request.headers.get("authorization"))
    answer = await unless_gone(
        request.receive, state.embeddings.create(caller, await request.body(), request.headers)
    )
    if answer is None:  # logged as 499
        return gone()
    return raw_json_response(answer.body, headers=answer.headers)


def add_routes(app: Starlette, prefix: str) -> None:
    app.add_route(f"{prefix}/embeddings", create_embeddings, methods=["POST"])
