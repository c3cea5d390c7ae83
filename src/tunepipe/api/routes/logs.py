"""OpenPipe's log endpoints (``/report``, ``/logs/update-metadata``, …) and tunepipe's log
search and export (``GET /logs``, ``GET /logs/{id}``, ``GET /logs/export``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.db.log_queries import LogFilter
from tunepipe.domain.labels import normalise_tags
from tunepipe.errors import InvalidRequest
from tunepipe.protocol.logs import (
    CheckCacheRequest,
    ReportAnthropicRequest,
    ReportRequest,
    UpdateMetadataRequest,
    UpdateTagsRequest,
)
from tunepipe.services.logs import call_view

router = APIRouter(tags=["logs"])


@router.post("/report")
async def report(body: ReportRequest, state: State, caller: Writer) -> Response:
    await state.logs.report(caller, body)
    return json_response({"status": "ok"})


@router.post("/report-anthropic")
async def report_anthropic(body: ReportAnthropicRequest, state: State, caller: Writer) -> Response:
    await state.logs.report_anthropic(caller, body)
    return json_response({"status": "ok"})


@router.post("/logs/update-metadata")
async def update_metadata(body: UpdateMetadataRequest, state: State, caller: Writer) -> Response:
    matched = await state.logs.update_metadata(caller, body.filters, body.metadata, "metadata.")
    return json_response({"matchedLogs": matched})


@router.post("/logs/update-tags")
async def update_tags(body: UpdateTagsRequest, state: State, caller: Writer) -> Response:
    """Deprecated: tags are metadata; ``tags.<name>`` filters and null deletes still work."""
    changes: dict[str, str | None] = {k: None for k, v in body.tags.items() if v is None}
    changes.update(normalise_tags({k: v for k, v in body.tags.items() if v is not None}))
    matched = await state.logs.update_metadata(caller, body.filters, changes, "tags.")
    return json_response({"matchedLogs": matched})


@router.get("/local-testing-only-get-latest-logged-call")
async def latest_logged_call(state: State, caller: Caller) -> Response:
    call = await state.logs.latest(caller)
    if call is None:
        return json_response(None)
    return json_response(
        {
            "createdAt": datetime.fromtimestamp(call.requested_at / 1000, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "cacheHit": call.cache_hit,
            "statusCode": call.status_code,
            "errorMessage": call.error_message,
            "reqPayload": call.request,
            "respPayload": call.response,
            "tags": call.metadata,
            "metadata": call.metadata,
        }
    )


@router.post("/check-cache")
async def check_cache(body: CheckCacheRequest, caller: Caller) -> Response:
    """Deprecated in OpenPipe ("we no longer support prompt caching" here); always a miss."""
    return json_response({"respPayload": None})


def _time(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if value.lstrip("-").isdigit():
        if abs(ms := int(value)) >= 2**63:
            raise InvalidRequest(f"`{name}` is out of range", param=name)
        return ms
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(f"`{name}` must be Unix milliseconds or an ISO 8601 time", param=name) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _filter(request: Request, *, only_success: bool = False) -> LogFilter:
    q = request.query_params
    if any("\x00" in k or "\x00" in v for k, v in q.multi_items()):
        raise InvalidRequest("Query parameters cannot contain NUL characters")
    status = q.get("status")
    if status is not None and not (status.isdigit() and len(status) <= 3):
        raise InvalidRequest("`status` must be an HTTP status code", param="status")
    metadata = {k[len("metadata.") :]: v for k, v in q.items() if k.startswith("metadata.") and len(k) > 9}
    return LogFilter(
        since_ms=_time(q.get("since"), "since"),
        until_ms=_time(q.get("until"), "until"),
        model=q.get("model") or None,
        status_code=int(status) if status else None,
        completion_id=q.get("completion_id") or None,
        metadata=metadata,
        contains=q.get("contains") or None,
        only_success=only_success,
    )


@router.get("/logs")
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
    calls, next_cursor = await state.logs.page(caller, _filter(request), cursor, limit, bodies)
    has_more = next_cursor is not None
    return json_response(
        {
            "object": "list",
            "data": [call_view(c, bodies=bodies) for c in calls],
            "has_more": has_more,
            "next_cursor": next_cursor if has_more else None,
        }
    )


@router.get("/logs/export")
async def export_logs(
    request: Request,
    state: State,
    caller: Caller,
    remove_duplicates: bool = True,
    exclude_errors: bool = True,
) -> Response:
    """Stream matching calls as JSONL in OpenPipe's log-export format."""
    f = _filter(request, only_success=exclude_errors)
    await state.logs.prepare_export()
    lines = state.logs.export_lines(caller, f, remove_duplicates=remove_duplicates)
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="exported.jsonl"'},
    )


@router.get("/logs/{call_id}")
async def get_log(call_id: str, state: State, caller: Caller) -> Response:
    return json_response(call_view(await state.logs.get(caller, call_id), bodies=True))
