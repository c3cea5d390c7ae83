"""Use cases over request logs: report calls made elsewhere, relabel, query and export.

Reads first wait for the writer to flush what this process has already queued, so a caller
that made a request and then reads its log sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Engine

from tunepipe.db import log_queries
from tunepipe.db.log_queries import LogFilter, LoggedCall
from tunepipe.db.log_writer import MAX_METADATA_VALUE_BYTES, LogWriter
from tunepipe.db.records import Principal
from tunepipe.domain.clock import now_ms
from tunepipe.domain.labels import merge_labels, normalise_tags
from tunepipe.domain.pricing import guess_price
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.logs import MetadataFilter, ReportAnthropicRequest, ReportRequest
from tunepipe.providers.anthropic.translate import from_anthropic_request, to_openai_completion
from tunepipe.services.request_log import build_record


def filter_from_openpipe(filters: list[MetadataFilter], prefix: str = "metadata.") -> LogFilter:
    """OpenPipe's ``{field, equals}`` filters (AND-ed) as a :class:`LogFilter`."""
    model = completion_id = None
    metadata: dict[str, str] = {}
    for f in filters:
        value = f.equals if isinstance(f.equals, str) else orjson.dumps(f.equals).decode()
        if "\x00" in value or "\x00" in f.field:
            raise InvalidRequest("Filters cannot contain NUL characters", param="filters")
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
    }
    if bodies:
        out["reqPayload"] = call.request
        out["respPayload"] = call.response
    return out


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


class LogService:
    def __init__(self, engine: Engine, writer: LogWriter) -> None:
        self._engine = engine
        self._writer = writer

    async def report(self, principal: Principal, body: ReportRequest, *, source: str = "report") -> None:
        req = body.req_payload
        model = req.get("model") if isinstance(req, dict) else None
        requested_at = body.requested_at if body.requested_at is not None else now_ms()
        metadata = merge_labels(
            req.get("metadata") if isinstance(req, dict) and isinstance(req.get("metadata"), dict) else None,
            normalise_tags(body.tags),
        )
        if isinstance(body, ReportAnthropicRequest):
            metadata.update(body.metadata)
        await self._writer.submit(
            build_record(
                project_id=principal.project.id,
                requested_at=requested_at,
                received_at=body.received_at if body.received_at is not None else requested_at,
                model=model if isinstance(model, str) else None,
                status_code=body.status_code,
                source=source,
                request=req,
                response=body.resp_payload,
                error_message=body.error_message,
                metadata=metadata,
                price=guess_price(model) if isinstance(model, str) else None,
            )
        )

    async def report_anthropic(self, principal: Principal, body: ReportAnthropicRequest) -> None:
        req, resp = body.req_payload, body.resp_payload
        model = req.get("model", "") if isinstance(req, dict) else ""
        converted = body.model_copy(
            update={
                "req_payload": from_anthropic_request(req) if isinstance(req, dict) else req,
                "resp_payload": (
                    to_openai_completion(resp, model)
                    if isinstance(resp, dict) and resp.get("type") == "message"
                    else resp
                ),
            }
        )
        if isinstance(converted.req_payload, dict) and model:
            converted.req_payload["model"] = f"anthropic:{model}" if ":" not in model else model
        await self.report(principal, converted, source="report-anthropic")

    async def update_metadata(
        self, principal: Principal, filters: list[MetadataFilter], changes: dict[str, str | None], prefix: str
    ) -> int:
        f = filter_from_openpipe(filters, prefix)
        if any(len(k) > log_queries.MAX_METADATA_KEY for k in changes):
            raise InvalidRequest(
                f"Metadata keys are at most {log_queries.MAX_METADATA_KEY} characters", param="metadata"
            )
        if any("\x00" in k or (v is not None and "\x00" in v) for k, v in changes.items()):
            raise InvalidRequest("Metadata cannot contain NUL characters", param="metadata")
        if any(v is not None and len(v.encode()) > MAX_METADATA_VALUE_BYTES for v in changes.values()):
            raise InvalidRequest(
                f"Metadata values are at most {MAX_METADATA_VALUE_BYTES} bytes", param="metadata"
            )
        await self._writer.flush()
        return await asyncio.to_thread(
            log_queries.update_metadata, self._engine, principal.project.id, f, changes
        )

    async def latest(self, principal: Principal) -> LoggedCall | None:
        await self._writer.flush()
        return await asyncio.to_thread(log_queries.latest_call, self._engine, principal.project.id)

    async def page(
        self, principal: Principal, f: LogFilter, cursor: str | None, limit: int, bodies: bool
    ) -> tuple[list[LoggedCall], str | None]:
        after = None
        if cursor:
            try:
                after = log_queries.decode_cursor(cursor)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequest("Invalid cursor", param="cursor") from exc
        await self._writer.flush()
        return await asyncio.to_thread(
            log_queries.list_calls,
            self._engine,
            principal.project.id,
            f,
            after=after,
            limit=limit,
            with_bodies=bodies,
        )

    async def get(self, principal: Principal, call_id: str) -> LoggedCall:
        await self._writer.flush()
        call = None
        if "\x00" not in call_id:  # no id has one, and Postgres refuses it in a query
            call = await asyncio.to_thread(log_queries.get_call, self._engine, principal.project.id, call_id)
        if call is None:
            raise NotFound(f"No logged call {call_id!r} in this project")
        return call

    async def prepare_export(self) -> None:
        await self._writer.flush()

    def export_lines(self, principal: Principal, f: LogFilter, *, remove_duplicates: bool) -> Iterator[bytes]:
        """JSONL lines, read page by page (run it in a thread: it does blocking I/O)."""
        seen: set[bytes] = set()
        for call in log_queries.iter_calls(self._engine, principal.project.id, f):
            item = export_line(call)
            if remove_duplicates:
                key = orjson.dumps([item["input"], item["output"]], option=orjson.OPT_SORT_KEYS)
                digest = hashlib.sha256(key).digest()
                if digest in seen:
                    continue
                seen.add(digest)
            yield orjson.dumps(item) + b"\n"
