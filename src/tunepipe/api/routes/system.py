"""Liveness, the request-log counters of this process, and the Prometheus scrape.

``GET /metrics`` is open unless ``TUNEPIPE_METRICS_TOKEN`` is set; then it asks for that token
as a bearer token (a project's API key does not open it: the metrics are the installation's).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from tunepipe import __version__
from tunepipe.api.deps import State
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.errors import AuthenticationFailed
from tunepipe.protocol.answers_admin import Health
from tunepipe.telemetry.metrics import Snapshot, render

router = APIRouter(tags=["system"])


@router.get("/health", responses=answers(Health))
async def health(state: State) -> Response:
    logs = asdict(state.writer.stats) | {"queueDepth": state.writer.queue_depth}
    return json_response({"status": "ok", "version": __version__, "logs": logs})


def _check_token(expected: str, authorization: str | None) -> None:
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise AuthenticationFailed("GET /metrics needs the metrics token: `Authorization: Bearer <token>`")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, state: State) -> Response:
    token = state.settings.metrics_token
    if token is not None:
        _check_token(token.get_secret_value(), request.headers.get("authorization"))
    snapshot = Snapshot(
        log_stats=asdict(state.writer.stats),
        log_queue_depth=state.writer.queue_depth,
        jobs=await state.jobs.open_counts(),
    )
    return Response(render(snapshot), media_type=CONTENT_TYPE_LATEST)
