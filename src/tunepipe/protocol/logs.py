"""The log API on the wire: OpenPipe's bodies (camelCase, as the SDK sends them), the log search
filters (query string and JSON forms), and how a logged call is shown and exported."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tunepipe.domain.logs import LogFilter, LoggedCall
from tunepipe.errors import InvalidRequest
from tunepipe.protocol.types import Text, no_nul

Scalar = str | int | float | bool | None


def _whole_ms(value: Any) -> Any:
    return math.floor(value) if isinstance(value, float) and math.isfinite(value) else value


# OpenPipe types times as "number": `time.time() * 1000` (a fraction) is valid; stored as whole ms.
UnixMs = Annotated[int, BeforeValidator(_whole_ms), Field(ge=-(2**63), lt=2**63)]  # a 64-bit column


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ReportRequest(_Body):
    requested_at: UnixMs | None = Field(None, alias="requestedAt")
    received_at: UnixMs | None = Field(None, alias="receivedAt")
    req_payload: Any = Field(None, alias="reqPayload")
    resp_payload: Any = Field(None, alias="respPayload")
    status_code: int | None = Field(None, alias="statusCode")
    error_message: str | None = Field(None, alias="errorMessage")
    # Reported calls keep what they can: NUL characters in labels are dropped when stored.
    tags: dict[str, Scalar] = Field(default_factory=dict)


class ReportAnthropicRequest(ReportRequest):
    metadata: dict[str, str] = Field(default_factory=dict)


class MetadataFilter(_Body):
    field: Text
    equals: Text | int | float | bool


class UpdateMetadataRequest(_Body):
    filters: list[MetadataFilter]
    metadata: dict[Text, Text | None]


class UpdateTagsRequest(_Body):
    filters: list[MetadataFilter]
    tags: dict[Text, Text | int | float | bool | None]


class CheckCacheRequest(_Body):
    requested_at: UnixMs = Field(alias="requestedAt")
    req_payload: Any = Field(None, alias="reqPayload")
    tags: dict[str, str] = Field(default_factory=dict)


# Log search filters


def parse_time(value: int | str | None, name: str) -> int | None:
    """Unix milliseconds, or an ISO 8601 time (UTC when it has no offset)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) or value.lstrip("-").isdigit():
        ms = int(value)
        if abs(ms) >= 2**63:
            raise InvalidRequest(f"`{name}` is out of range", param=name)
        return ms
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(f"`{name}` must be Unix milliseconds or an ISO 8601 time", param=name) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


CRITERION_OUTCOMES = ("pass", "fail", "error")


def query_filter(items: Iterable[tuple[str, str]], *, only_success: bool = False) -> LogFilter:
    """``GET /logs`` and ``/logs/export`` filters from the query string: ``since``/``until`` (ms
    or ISO 8601), ``model``, ``status``, ``completion_id``, ``metadata.<key>=<value>``
    (repeatable), ``criteria.<name>=pass|fail|error`` (a choice's result for that criterion),
    ``source`` (proxy, report, report-anthropic, judge), ``parent_id`` (the judges' calls of one
    call), ``contains`` (text in the request or response)."""
    q: dict[str, str] = {}
    metadata: dict[str, str] = {}
    criteria: dict[str, str] = {}
    for key, value in items:
        try:
            no_nul(key)
            no_nul(value)
        except ValueError:
            raise InvalidRequest("Query parameters cannot contain NUL characters", param=key) from None
        if key.startswith("metadata.") and len(key) > len("metadata."):
            metadata[key[len("metadata.") :]] = value
        elif key.startswith("criteria.") and len(key) > len("criteria."):
            if value not in CRITERION_OUTCOMES:
                raise InvalidRequest(f"`{key}` must be one of {', '.join(CRITERION_OUTCOMES)}", param=key)
            criteria[key[len("criteria.") :]] = value
        else:
            q[key] = value
    status = q.get("status")
    if status is not None and not (status.isdigit() and len(status) <= 3):
        raise InvalidRequest("`status` must be an HTTP status code", param="status")
    return LogFilter(
        since_ms=parse_time(q.get("since"), "since"),
        until_ms=parse_time(q.get("until"), "until"),
        model=q.get("model") or None,
        status_code=int(status) if status else None,
        completion_id=q.get("completion_id") or None,
        metadata=metadata,
        contains=q.get("contains") or None,
        only_success=only_success,
        criteria=criteria,
        source=q.get("source") or None,
        parent_id=q.get("parent_id") or None,
    )


def openpipe_filter(filters: list[MetadataFilter], prefix: str = "metadata.") -> LogFilter:
    """OpenPipe's ``{field, equals}`` filters (AND-ed) as a :class:`LogFilter`."""
    model = completion_id = None
    metadata: dict[str, str] = {}
    for f in filters:
        value = f.equals if isinstance(f.equals, str) else orjson.dumps(f.equals).decode()
        if f.field == "model":
            model = value
        elif f.field == "completionId":
            completion_id = value
        elif f.field.startswith(prefix) and len(f.field) > len(prefix):
            metadata[f.field[len(prefix) :]] = value
        else:
            raise InvalidRequest(
                f"Unsupported filter field {f.field!r}: use `model`, `completionId` or `{prefix}<key>`",
                param="filters",
            )
    return LogFilter(model=model, completion_id=completion_id, metadata=metadata)


# Views


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def call_view(call: LoggedCall, *, bodies: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "requestedAt": call.requested_at,
        "receivedAt": call.received_at,
        "durationMs": call.duration_ms,
        "model": call.model,
        "statusCode": call.status_code,
        "errorMessage": call.error_message,
        "inputTokens": call.input_tokens,
        "outputTokens": call.output_tokens,
        "cost": call.cost,
        "finishReason": call.finish_reason,
        "completionId": call.completion_id,
        "cacheHit": call.cache_hit,
        "source": call.source,
        "streamed": call.streamed,
        "metadata": call.metadata,
        "parentId": call.parent_id,
        "criteriaResults": {str(i): results for i, results in sorted(call.criteria.items())},
        "answeredBy": call.answered_by or call.model,
        "attemptCount": call.attempt_count or 1,
        "requestId": call.request_id,
        "endpoint": call.endpoint or "chat.completions",
    }
    if bodies:
        out["reqPayload"] = call.request
        out["respPayload"] = call.response
        out["attempts"] = call.attempts
    return out


def latest_call_view(call: LoggedCall) -> dict[str, Any]:
    """``/local-testing-only-get-latest-logged-call``, as the SDK's tests read it."""
    return {
        "createdAt": datetime.fromtimestamp(call.requested_at / 1000, UTC).isoformat().replace("+00:00", "Z"),
        "cacheHit": call.cache_hit,
        "statusCode": call.status_code,
        "errorMessage": call.error_message,
        "reqPayload": call.request,
        "respPayload": call.response,
        "tags": call.metadata,
        "metadata": call.metadata,
    }


def export_line(call: LoggedCall) -> dict[str, Any]:
    """One line of OpenPipe's log export: ``{input, output, cacheHit, durationMs, tags}``."""
    output = None
    if isinstance(call.response, dict):
        choices = call.response.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            output = choices[0].get("message")
    return {
        "input": call.request,
        "output": output,
        "cacheHit": call.cache_hit,
        "durationMs": call.duration_ms,
        "tags": call.metadata,
    }
