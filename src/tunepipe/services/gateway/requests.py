"""A chat request as the pipeline takes it: the caller's JSON, validated against the full
OpenAI schema (a 400 naming the offending field), its ``op-*`` headers read, and its log record
begun, so that a request that fails here is logged with its labels too. Every gateway endpoint
reads its calls here (``read_call``), so a refused call is logged the same way on each; and
:func:`log_unanswered` ends the record of a call that got no answer, a client that hung up
included (499).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tunepipe.domain.cache_keys import CacheMode, parse_mode, parse_ttl
from tunepipe.domain.clock import now_ms
from tunepipe.domain.json_depth import check_depth
from tunepipe.domain.labels import merge_labels, parse_tags_header
from tunepipe.domain.projects import Principal
from tunepipe.domain.request_context import current_request_id
from tunepipe.domain.routing import parse_fallback_header, parse_retries_header
from tunepipe.errors import InvalidRequest, TunepipeError, for_status
from tunepipe.protocol.chat import ChatCompletionRequest
from tunepipe.protocol.params import field_path, spelled
from tunepipe.services.logs.recording import CallLog, RequestLogger

M = TypeVar("M", bound=BaseModel)

# Logged for a call whose client went away before its answer (nginx's "client closed request").
CLIENT_CLOSED_REQUEST = 499


@dataclass(frozen=True, slots=True)
class Options:
    """The ``op-*`` headers of one call."""

    log_request: bool
    tags: dict[str, str]
    cache: CacheMode | None
    cache_ttl_s: int | None
    criteria: tuple[str, ...]
    fallbacks: tuple[str, ...] | None
    retries: int | None


@dataclass(slots=True)
class Prepared:
    body: dict[str, Any]
    request: ChatCompletionRequest
    call: CallLog
    options: Options


def _criteria_header(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Failed to parse op-criteria: {exc}", param="op-criteria") from exc
    if not isinstance(parsed, list) or not all(isinstance(c, str) for c in parsed):
        raise InvalidRequest("op-criteria must be a JSON array of criterion ids", param="op-criteria")
    return tuple(parsed)


def read_options(headers: Mapping[str, str]) -> Options:
    return Options(
        log_request=headers.get("op-log-request", "true").strip().lower() != "false",
        tags=parse_tags_header(headers.get("op-tags")),
        cache=parse_mode(headers.get("op-cache")),
        cache_ttl_s=parse_ttl(headers.get("op-cache-ttl")),
        criteria=_criteria_header(headers.get("op-criteria")),
        fallbacks=parse_fallback_header(headers.get("op-fallback")),
        retries=parse_retries_header(headers.get("op-retries")),
    )


def _field_path(err: ErrorDetails, body: Any) -> list[int | str]:
    """The offending field's path (:func:`~tunepipe.protocol.params.field_path`); a bad or
    missing discriminator names the tag field itself."""
    path = field_path(err["loc"], body)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        path.append(str((err.get("ctx") or {}).get("discriminator", "type")).strip("'"))
    return path


def _validation_message(exc: ValidationError, body: Any) -> tuple[str, str | None]:
    """Message and ``param`` (OpenAI's spelling, ``messages[0].content``) of the most specific
    error: with unions pydantic reports every member, and the deepest path is the useful one."""
    paths = [(_field_path(err, body), err) for err in exc.errors(include_url=False)]
    path, err = max(paths, key=lambda p: len(p[0]))
    param = spelled(path)
    msg = err["msg"].removeprefix("Value error, ")
    if not param:
        return f"Invalid request: {msg}", None
    return f"Invalid request: `{param}`: {msg}", param


def _decode(raw: bytes) -> Any:
    check_depth(raw)  # a JsonTooDeep is an InvalidRequest: logged below like any other
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from exc


def _validated(schema: type[M], body: dict[str, Any]) -> M:
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        message, param = _validation_message(exc, body)
        raise InvalidRequest(message, param=param) from exc


async def read_call(
    logger: RequestLogger,
    principal: Principal,
    raw: bytes,
    headers: Mapping[str, str],
    schema: type[M],
    *,
    endpoint: str | None = None,
    parse: Callable[[dict[str, Any]], M] | None = None,
) -> tuple[CallLog, dict[str, Any], M, Options]:
    """Parse ``raw`` and validate it against ``schema``, with its log record begun; a failure
    here is logged (when logging is on; never for a read-only key) with the body as sent, and
    raised as a 400 naming the offending field.

    ``endpoint`` names the API the call came through (``responses``, ``messages``,
    ``embeddings``…; ``None`` for chat completions); the log keeps it. ``parse``, when given,
    validates instead of ``schema`` (an API that words its refusals its own way, as Anthropic's
    does); it raises :class:`~tunepipe.errors.InvalidRequest`."""
    call = CallLog(
        project_id=principal.project.id,
        requested_at=now_ms(),
        model=None,
        request=raw,
        enabled=not principal.read_only and headers.get("op-log-request", "").lower() != "false",
        endpoint=endpoint,
        request_id=current_request_id(),
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
        request = parse(body) if parse is not None else _validated(schema, body)
    except InvalidRequest as exc:
        if isinstance(call.request, bytes):
            call.request = {"raw": call.request.decode("utf-8", "replace")}
        await logger.failure(call, exc)
        raise
    call.enabled = options.log_request and body.get("store") is not False and not principal.read_only
    return call, body, request, options


async def prepare(
    logger: RequestLogger,
    principal: Principal,
    raw: bytes,
    headers: Mapping[str, str],
    *,
    endpoint: str | None = None,
) -> Prepared:
    """A chat-completions call read (:func:`read_call`), with its labels and options."""
    call, body, request, options = await read_call(
        logger, principal, raw, headers, ChatCompletionRequest, endpoint=endpoint
    )
    call.enabled = call.enabled and request.store is not False
    call.metadata = merge_labels(request.metadata, options.tags)
    return Prepared(body=body, request=request, call=call, options=options)


def client_gone(before: str = "the answer was ready") -> TunepipeError:
    """The error a call whose client hung up is logged with (status 499)."""
    return for_status(CLIENT_CLOSED_REQUEST, f"client disconnected before {before}")


async def log_unanswered(
    logger: RequestLogger, call: CallLog, exc: BaseException, *, streamed: bool = False
) -> None:
    """Log a call that ended with ``exc`` instead of an answer: a refusal or an upstream's
    error with its own status, a cancellation as 499 (the client hung up, and the API layer
    cancelled the call: ``api/disconnect.py``). Anything else is a bug, which the error handler
    reports; it is not logged as a call."""
    if isinstance(exc, TunepipeError):
        await logger.failure(call, exc, streamed=streamed)
    elif isinstance(exc, asyncio.CancelledError):
        await logger.failure(call, client_gone(), streamed=streamed)
