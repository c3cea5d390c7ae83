"""Liveness and the request-log counters (enqueued, written, dropped) of this process."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe import __version__
from tunepipe.api.deps import State
from tunepipe.api.json import json_response

router = APIRouter(tags=["system"])


@router.get("/health")
async def health(state: State) -> Response:
    logs = asdict(state.writer.stats) | {"queueDepth": state.writer.queue_depth}
    return json_response({"status": "ok", "version": __version__, "logs": logs})
