"""OpenPipe's log endpoints (``/report``, ``/logs/update-metadata``, …) and tunepipe's log
search and export (``GET /logs``, ``GET /logs/{id}``, ``GET /logs/export``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import JSONL, answers, download
from tunepipe.domain.labels import normalise_tag_name, normalise_tags
from tunepipe.domain.model_ref import parse_model
from tunepipe.errors import InvalidRequest
from tunepipe.protocol.answers_data import (
    CachedAnswer,
    LatestLoggedCallOrNull,
    LoggedCallAnswer,
    LoggedCallPage,
    MatchedLogs,
    Status,
)
from tunepipe.protocol.logs import (
    CheckCacheRequest,
    ReportAnthropicRequest,
    ReportRequest,
    UpdateMetadataRequest,
    UpdateTagsRequest,
    call_view,
    latest_call_view,
    openpipe_filter,
    query_filter,
)
from tunepipe.protocol.types import Id

router = APIRouter(tags=["logs"])


@router.post("/report", responses=answers(Status))
async def report(body: ReportRequest, state: State, caller: Writer) -> Response:
    await state.logs.report(caller, body)
    return json_response({"status": "ok"})


@router.post("/report-anthropic", responses=answers(Status))
async def report_anthropic(body: ReportAnthropicRequest, state: State, caller: Writer) -> Response:
    await state.logs.report_anthropic(caller, body)
    return json_response({"status": "ok"})


@router.post("/logs/update-metadata", responses=answers(MatchedLogs))
async def update_metadata(body: UpdateMetadataRequest, state: State, caller: Writer) -> Response:
    f = openpipe_filter(body.filters, "metadata.")
    return json_response({"matchedLogs": await state.logs.update_metadata(caller, f, body.metadata)})


@router.post("/logs/update-tags", responses=answers(MatchedLogs))
async def update_tags(body: UpdateTagsRequest, state: State, caller: Writer) -> Response:
    """Deprecated: tags are metadata; ``tags.<name>`` filters and null deletes still work (a tag
    name is cleaned the same way whether it is set or deleted)."""
    changes: dict[str, str | None] = {normalise_tag_name(k): None for k, v in body.tags.items() if v is None}
    changes.update(normalise_tags({k: v for k, v in body.tags.items() if v is not None}))
    f = openpipe_filter(body.filters, "tags.")
    return json_response({"matchedLogs": await state.logs.update_metadata(caller, f, changes)})


@router.get("/local-testing-only-get-latest-logged-call", responses=answers(LatestLoggedCallOrNull))
async def latest_logged_call(state: State, caller: Caller) -> Response:
    call = await state.logs.latest(caller)
    return json_response(latest_call_view(call) if call is not None else None)


@router.post("/check-cache", responses=answers(CachedAnswer, errors=[404]))
async def check_cache(body: CheckCacheRequest, state: State, caller: Caller) -> Response:
    """Deprecated in OpenPipe ("we no longer support prompt caching" here); tunepipe answers it
    from the response cache: the answer stored for ``reqPayload`` (a chat request as sent, keyed
    like ``op-cache``), or null. It only reads; ``requestedAt`` and ``tags`` are not used. No
    ``reqPayload`` (optional in OpenPipe's schema) is a miss; one that is not a request, a 400."""
    payload = body.req_payload
    if payload is None:
        return json_response({"respPayload": None})
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
        raise InvalidRequest("reqPayload must be a chat request with a `model`", param="reqPayload")
    model: str = payload["model"]
    route = await state.router.resolve(caller, parse_model(model))
    return json_response({"respPayload": await state.cache.get(caller, model, route.identity, payload)})


@router.get("/logs", responses=answers(LoggedCallPage))
async def list_logs(
    request: Request,
    state: State,
    caller: Caller,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    bodies: bool = False,
) -> Response:
    """Filters: ``since``/``until`` (ms or ISO 8601), ``model``, ``status``, ``completion_id``,
    ``metadata.<key>=<value>`` (repeatable), ``contains`` (text in request or response)."""
    f = query_filter(request.query_params.multi_items())
    calls, next_cursor = await state.logs.page(caller, f, cursor, limit, bodies)
    return json_response(
        {
            "object": "list",
            "data": [call_view(c, bodies=bodies) for c in calls],
            "has_more": next_cursor is not None,
            "next_cursor": next_cursor,
        }
    )


@router.get(
    "/logs/export",
    response_class=StreamingResponse,
    responses=download(
        "application/x-ndjson", "Matching calls as JSON lines in OpenPipe's log-export format", JSONL
    ),
)
async def export_logs(
    request: Request,
    state: State,
    caller: Caller,
    remove_duplicates: bool = True,
    exclude_errors: bool = True,
) -> Response:
    """Stream matching calls as JSONL in OpenPipe's log-export format."""
    f = query_filter(request.query_params.multi_items(), only_success=exclude_errors)
    await state.logs.prepare_export()
    lines = state.logs.export_lines(caller, f, remove_duplicates=remove_duplicates)
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="exported.jsonl"'},
    )


@router.get("/logs/{call_id}", responses=answers(LoggedCallAnswer))
async def get_log(call_id: Id, state: State, caller: Caller) -> Response:
    return json_response(call_view(await state.logs.get(caller, call_id), bodies=True))
