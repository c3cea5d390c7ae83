"""The chat-completions pipeline: validate → route → call the provider → log.

One function per step. The caller's JSON is forwarded as sent (only ``model`` is rewritten and
OpenPipe-only fields are removed), so OpenAI parameters tunepipe does not know still reach the
provider. Streams are forwarded chunk by chunk and assembled on the side for the log.

The service returns values, not bytes: a :class:`~tunepipe.domain.completions.Completion`, or
for a stream the chunks as dicts, ending either normally or with one :class:`StreamFailed`.
Framing them as HTTP (JSON, server-sent events) is the API layer's job.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from tunepipe.domain.clock import now_ms
from tunepipe.domain.completions import Completion
from tunepipe.domain.criteria import Criterion
from tunepipe.domain.labels import merge_labels, parse_tags_header
from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.domain.stream_assembly import StreamAssembler
from tunepipe.errors import InvalidRequest, TunepipeError, UpstreamError
from tunepipe.protocol.chat import ChatCompletionRequest
from tunepipe.services.gateway.criteria import CriteriaStep, attach, results_chunk
from tunepipe.services.gateway.judge import JudgeLog
from tunepipe.services.gateway.routing import Route, Router
from tunepipe.services.logs.recording import CallLog, RequestLogger

log = logging.getLogger(__name__)

# Logged for a stream the client abandoned (nginx's "client closed request").
CLIENT_CLOSED_REQUEST = 499

CACHE_MODES = frozenset({"readWrite", "readOnly", "writeOnly", "true", "false"})


@dataclass(frozen=True, slots=True)
class Options:
    """The ``op-*`` headers of one call."""

    log_request: bool
    tags: dict[str, str]
    cache: str | None
    criteria: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The last event of a stream that broke off after it started: the client gets this error."""

    error: TunepipeError


StreamEvent = dict[str, Any] | StreamFailed


@dataclass(slots=True)
class Judging:
    """A stream's criteria, judged once it has ended."""

    principal: Principal
    criteria: list[Criterion]
    body: dict[str, Any]
    completion: dict[str, Any] | None = None


@dataclass(slots=True)
class Prepared:
    body: dict[str, Any]
    request: ChatCompletionRequest
    call: CallLog
    options: Options


def read_options(headers: Mapping[str, str]) -> Options:
    cache = headers.get("op-cache")
    if cache is not None and cache not in CACHE_MODES:
        raise InvalidRequest("op-cache must be one of readWrite, readOnly, writeOnly", param="op-cache")
    criteria: tuple[str, ...] = ()
    raw_criteria = headers.get("op-criteria")
    if raw_criteria:
        try:
            parsed = orjson.loads(raw_criteria)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"Failed to parse op-criteria: {exc}", param="op-criteria") from exc
        if not isinstance(parsed, list) or not all(isinstance(c, str) for c in parsed):
            raise InvalidRequest("op-criteria must be a JSON array of criterion ids", param="op-criteria")
        criteria = tuple(parsed)
    return Options(
        log_request=headers.get("op-log-request", "true").strip().lower() != "false",
        tags=parse_tags_header(headers.get("op-tags")),
        cache=cache,
        criteria=criteria,
    )


def _field_path(err: ErrorDetails, body: Any) -> list[str | int]:
    """The path of the offending field in the caller's JSON.

    Pydantic's ``loc`` also holds discriminator tags (``user``) and union-member labels
    (``str``, ``literal[...]``) that name no field; walking the body alongside drops them. A
    last segment that is not in the body is a missing required field and is kept.
    """
    path: list[str | int] = []
    node = body
    loc = err["loc"]
    for i, seg in enumerate(loc):
        if isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]
        elif isinstance(node, dict) and isinstance(seg, str) and (seg in node or i == len(loc) - 1):
            node = node.get(seg)
        else:
            continue
        path.append(seg)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        path.append(str((err.get("ctx") or {}).get("discriminator", "type")).strip("'"))
    return path


def _validation_message(exc: ValidationError, body: Any) -> tuple[str, str | None]:
    """Message and ``param`` (OpenAI's spelling, ``messages[0].content``) of the most specific
    error: with unions pydantic reports every member, and the deepest path is the useful one."""
    paths = [(_field_path(err, body), err) for err in exc.errors(include_url=False)]
    path, err = max(paths, key=lambda p: len(p[0]))
    param = "".join(f"[{seg}]" if isinstance(seg, int) else f".{seg}" for seg in path).lstrip(".")
    msg = err["msg"].removeprefix("Value error, ")
    if not param:
        return f"Invalid request: {msg}", None
    return f"Invalid request: `{param}`: {msg}", param


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from exc


def upstream_body(body: dict[str, Any], route: Route, *, stream: bool) -> dict[str, Any]:
    """The caller's body as the provider should see it."""
    out = dict(body)
    out["model"] = route.ref.name
    # `metadata` labels the log; OpenAI accepts it only with `store: true` (then it also stores).
    if not (route.ref.kind is RouteKind.OPENAI and body.get("store") is True):
        out.pop("metadata", None)
        out.pop("store", None)
    if stream:
        # Always ask for usage so streamed calls are logged with tokens and cost.
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True
        out["stream_options"] = options
    return out


class ChatService:
    def __init__(self, router: Router, logger: RequestLogger, criteria: CriteriaStep) -> None:
        self._router = router
        self._logger = logger
        self._criteria = criteria

    async def prepare(self, principal: Principal, raw: bytes, headers: Mapping[str, str]) -> Prepared:
        """Parse and validate; a failure here is logged (when logging is on) and raised."""
        call = CallLog(
            project_id=principal.project.id,
            requested_at=now_ms(),
            model=None,
            request=raw,
            enabled=not principal.read_only and headers.get("op-log-request", "").lower() != "false",
        )
        try:
            body = _decode(raw)
            if not isinstance(body, dict):
                raise InvalidRequest("Request body must be a JSON object")
            call.request = body
            if body.get("store") is False:  # an opt-out holds even when the rest is invalid
                call.enabled = False
            if isinstance(body.get("model"), str):
                call.model = body["model"]
            # Labels first, so a request that fails validation is still logged with them.
            metadata = body.get("metadata")
            call.metadata = merge_labels(metadata if isinstance(metadata, dict) else None)
            options = read_options(headers)
            call.metadata = merge_labels(metadata if isinstance(metadata, dict) else None, options.tags)
            try:
                request = ChatCompletionRequest.model_validate(body)
            except ValidationError as exc:
                message, param = _validation_message(exc, body)
                raise InvalidRequest(message, param=param) from exc
        except InvalidRequest as exc:
            if isinstance(call.request, bytes):
                call.request = {"raw": call.request.decode("utf-8", "replace")}
            await self._logger.failure(call, exc)
            raise
        call.enabled = options.log_request and request.store is not False and not principal.read_only
        call.metadata = merge_labels(request.metadata, options.tags)
        return Prepared(body=body, request=request, call=call, options=options)

    def _judge_log(self, call: CallLog) -> JudgeLog | None:
        """Judges' calls are logged under the call they judge, when that call is logged."""
        return JudgeLog(parent_id=call.id, metadata=dict(call.metadata)) if call.enabled else None

    async def complete(self, principal: Principal, prepared: Prepared) -> Completion:
        call = prepared.call
        try:
            criteria = await self._criteria.resolve(principal, prepared.options.criteria)
            route = await self._router.resolve(principal, parse_model(prepared.request.model))
            call.price = route.price
            result = await route.provider.complete(upstream_body(prepared.body, route, stream=False))
        except TunepipeError as exc:
            await self._logger.failure(call, exc)
            raise
        if criteria:
            results = await self._criteria.judge_choices(
                principal, criteria, prepared.body, result.data, log=self._judge_log(call)
            )
            call.criteria = attach(result.data, results)
            result = Completion(result.data)  # changed: the upstream's bytes no longer match
        await self._logger.success(call, result.data, raw=result.raw)
        return result

    async def stream(self, principal: Principal, prepared: Prepared) -> AsyncIterator[StreamEvent]:
        """Open the upstream stream (errors raise here, before anything is sent) and return the
        events for the client: the chunks, then a :class:`StreamFailed` if it broke off."""
        call = prepared.call
        try:
            criteria = await self._criteria.resolve(principal, prepared.options.criteria)
            route = await self._router.resolve(principal, parse_model(prepared.request.model))
            call.price = route.price
            chunks = await route.provider.open_stream(upstream_body(prepared.body, route, stream=True))
        except TunepipeError as exc:
            await self._logger.failure(call, exc, streamed=True)
            raise
        options = prepared.request.stream_options
        judging = Judging(principal, criteria, prepared.body) if criteria else None
        return self._relay(
            call, chunks, include_usage=bool(options and options.include_usage), judging=judging
        )

    async def _relay(
        self,
        call: CallLog,
        chunks: AsyncIterator[dict[str, Any]],
        *,
        include_usage: bool,
        judging: Judging | None = None,
    ) -> AsyncIterator[StreamEvent]:
        assembler = StreamAssembler()
        failure: str | None = "client disconnected before the stream ended"
        status = CLIENT_CLOSED_REQUEST
        try:
            async for chunk in chunks:
                assembler.feed(chunk)
                if not include_usage:
                    if not chunk.get("choices") and chunk.get("usage"):
                        continue
                    chunk.pop("usage", None)
                yield chunk
            failure, status = None, 200
            if judging is not None:
                yield await self._judge_stream(call, assembler, judging)
        except UpstreamError as exc:
            failure, status = exc.message, exc.status_code
            yield StreamFailed(exc)
        except Exception as exc:
            log.exception("stream relay failed")
            failure, status = f"stream failed: {exc.__class__.__name__}", 500
            yield StreamFailed(TunepipeError(failure))
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            completion = judging.completion if judging is not None and judging.completion else None
            await self._logger.success(
                call,
                completion or assembler.completion(),
                streamed=True,
                error_message=failure,
                status_code=status,
            )

    async def _judge_stream(
        self, call: CallLog, assembler: StreamAssembler, judging: Judging
    ) -> dict[str, Any]:
        """Judge the assembled stream; the chunk that carries the results."""
        completion = assembler.completion()
        results = await self._criteria.judge_choices(
            judging.principal, judging.criteria, judging.body, completion, log=self._judge_log(call)
        )
        chunk = results_chunk(completion, results)
        for choice in completion.get("choices") or []:
            found = results.get(int(choice.get("index", 0)), [])
            choice["criteria_results"] = {r.name: r.wire() for r in found}
            call.criteria.extend((int(choice.get("index", 0)), r) for r in found)
        judging.completion = completion
        return chunk
