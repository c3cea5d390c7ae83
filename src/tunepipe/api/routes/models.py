"""``GET /models``: what the calling project can use on ``/chat/completions``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import Caller, State
from tunepipe.api.json import json_response
from tunepipe.services.routing import available_models

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(state: State, caller: Caller) -> Response:
    return json_response({"object": "list", "data": await available_models(state.router, caller)})
