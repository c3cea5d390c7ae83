"""Use cases over request logs: report calls made elsewhere, relabel, query and export.

Reads first wait for the writer to flush what this process has already queued, so a caller
that made a request and then reads its log sees it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import orjson

from tunepipe.db import log_queries
from tunepipe.db.database import Database
from tunepipe.db.log_rows import MAX_METADATA_VALUE_BYTES
from tunepipe.db.log_writer import LogWriter
from tunepipe.domain.clock import now_ms
from tunepipe.domain.labels import merge_labels, normalise_tags
from tunepipe.domain.logs import LogFilter, LoggedCall
from tunepipe.domain.pricing import guess_price
from tunepipe.domain.projects import Principal
from tunepipe.domain.request_context import current_request_id
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.logs import ReportAnthropicRequest, ReportRequest, export_line
from tunepipe.providers.anthropic.translate import from_anthropic_request, to_openai_completion
from tunepipe.services.logs.recording import build_record

EXPORT_PAGE = 500


def check_metadata_changes(changes: dict[str, str | None]) -> None:
    """Keys fit their column; values fit the index on them (a btree entry stays small)."""
    if any(len(k) > log_queries.MAX_METADATA_KEY for k in changes):
        raise InvalidRequest(
            f"Metadata keys are at most {log_queries.MAX_METADATA_KEY} characters", param="metadata"
        )
    if any(v is not None and len(v.encode()) > MAX_METADATA_VALUE_BYTES for v in changes.values()):
        raise InvalidRequest(
            f"Metadata values are at most {MAX_METADATA_VALUE_BYTES} bytes", param="metadata"
        )


class LogService:
    def __init__(self, db: Database, writer: LogWriter) -> None:
        self._db = db
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
                request_id=current_request_id(),
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
        self, principal: Principal, f: LogFilter, changes: dict[str, str | None]
    ) -> int:
        """Set (string) or delete (None) metadata keys on every matching call; how many matched."""
        check_metadata_changes(changes)
        await self._writer.flush()
        return await self._db.run(log_queries.update_metadata, principal.project.id, f, changes)

    async def latest(self, principal: Principal) -> LoggedCall | None:
        await self._writer.flush()
        return await self._db.run(log_queries.latest_call, principal.project.id)

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
        return await self._db.run(
            log_queries.list_calls, principal.project.id, f, after=after, limit=limit, with_bodies=bodies
        )

    @staticmethod
    def cursor_of(call: LoggedCall) -> str:
        """The cursor that pages on from ``call`` (either way)."""
        return log_queries.encode_cursor(call.requested_at, call.id)

    async def page_newer(
        self, principal: Principal, f: LogFilter, cursor: str, limit: int
    ) -> tuple[list[LoggedCall], bool]:
        """The page of calls just newer than ``cursor`` (newest first), and whether calls newer
        still exist: the way back through pages that :meth:`page` walked forward."""
        try:
            before = log_queries.decode_cursor(cursor)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest("Invalid cursor", param="before") from exc
        await self._writer.flush()
        calls, more = await self._db.run(
            log_queries.list_calls, principal.project.id, f, after=before, limit=limit, newer=True
        )
        return calls[::-1], more is not None

    async def set_call_metadata(
        self, principal: Principal, call_id: str, changes: dict[str, str | None]
    ) -> None:
        """Set (string) or delete (None) metadata keys of one call of the caller's project."""
        check_metadata_changes(changes)
        await self._writer.flush()
        if not await self._db.run(log_queries.update_call_metadata, principal.project.id, call_id, changes):
            raise NotFound(f"No logged call {call_id!r} in this project")

    async def get(self, principal: Principal, call_id: str) -> LoggedCall:
        await self._writer.flush()
        call = await self._db.run(log_queries.get_call, principal.project.id, call_id)
        if call is None:
            raise NotFound(f"No logged call {call_id!r} in this project")
        return call

    async def prepare_export(self) -> None:
        await self._writer.flush()

    def export_lines(self, principal: Principal, f: LogFilter, *, remove_duplicates: bool) -> Iterator[bytes]:
        """JSONL lines, read a page per transaction (blocking: run it in a thread)."""
        seen: set[bytes] = set()
        for call in self.iter_calls(principal.project.id, f):
            item = export_line(call)
            if remove_duplicates:
                key = orjson.dumps([item["input"], item["output"]], option=orjson.OPT_SORT_KEYS)
                digest = hashlib.sha256(key).digest()
                if digest in seen:
                    continue
                seen.add(digest)
            yield orjson.dumps(item) + b"\n"

    def iter_calls(
        self, project_id: str, f: LogFilter, *, page_size: int = EXPORT_PAGE
    ) -> Iterator[LoggedCall]:
        """Every matching call with bodies, newest first, one short read per page (blocking)."""
        after: tuple[int, str] | None = None
        while True:
            page, _ = self._db.run_sync(
                log_queries.list_calls, project_id, f, after=after, limit=page_size, with_bodies=True
            )
            yield from page
            if len(page) < page_size:
                return
            after = (page[-1].requested_at, page[-1].id)

    async def usage(
        self, principal: Principal, since_ms: int, until_ms: int, bucket_ms: int
    ) -> tuple[list[log_queries.UsageRow], list[log_queries.StatusCount]]:
        """The project's calls of ``[since_ms, until_ms)`` aggregated in SQL: by bucket of
        ``bucket_ms`` and model, and the errors by status (judges' calls left out)."""
        if bucket_ms < 1 or until_ms <= since_ms:
            raise InvalidRequest("A usage window needs a positive bucket and an end after its start")
        await self._writer.flush()
        return await self._db.run(log_queries.usage, principal.project.id, since_ms, until_ms, bucket_ms)
