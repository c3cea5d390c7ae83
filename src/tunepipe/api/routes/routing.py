"""Routing for failures (tunepipe's; OpenPipe's fallback lived only in its SDK): a project's
default fallback chains and retries per model, and the circuit breaker's view of its models.
A model name in a path may hold ``:`` and ``/`` (``openpipe:provider/model``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.api.routes import paths  # noqa: F401  (registers `{name:anypath}`)
from tunepipe.protocol.answers_admin import FallbackChainAnswer, ModelDeleted, RoutingOverview
from tunepipe.protocol.routing import FallbackChainRequest, chain_view
from tunepipe.protocol.types import Id

router = APIRouter(tags=["routing"])


@router.get("/routing", responses=answers(RoutingOverview))
async def routing_overview(state: State, caller: Caller) -> Response:
    return json_response({"object": "routing", **await state.fallbacks.overview(caller)})


@router.put("/routing/fallbacks/{model:anypath}", responses=answers(FallbackChainAnswer))
async def set_fallbacks(model: Id, body: FallbackChainRequest, state: State, caller: Writer) -> Response:
    return json_response(chain_view(await state.fallbacks.set(caller, model, body.fallbacks, body.retries)))


@router.delete("/routing/fallbacks/{model:anypath}", responses=answers(ModelDeleted))
async def delete_fallbacks(model: Id, state: State, caller: Writer) -> Response:
    await state.fallbacks.delete(caller, model)
    return json_response({"model": model, "deleted": True})
