"""What ``/embeddings`` and ``/completions`` share: reading the call (its ``op-*`` headers, its log
record begun, a 400 naming the offending field), deciding whether the model can serve the
endpoint at all, and the body an OpenAI-compatible upstream receives.

These endpoints go through routing, rate limits and the log like chat, but not through the
chat-only steps (response cache, fallbacks, criteria, mixtures): those are defined on chat
completions. Only OpenAI and a project's external OpenAI-compatible providers have these
endpoints upstream; local models are served in-process (encoders embed, causal models
complete); every other kind of model gets a 400 with ``param: "model"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tunepipe.domain.clock import now_ms
from tunepipe.domain.labels import merge_labels
from tunepipe.domain.model_ref import ModelRef, RouteKind
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest
from tunepipe.providers.openai_compat import OpenAICompatProvider
from tunepipe.services.gateway.chat import StreamEvent
from tunepipe.services.gateway.requests import _decode, _validation_message, read_options
from tunepipe.services.gateway.routing import Route, Router
from tunepipe.services.logs.recording import CallLog, RequestLogger

T = TypeVar("T", bound=BaseModel)

_KIND_NAMES = {
    RouteKind.ANTHROPIC: "an Anthropic model",
    RouteKind.GEMINI: "a Gemini model",
    RouteKind.FINE_TUNE: "a fine-tuned model",
    RouteKind.MOA: "a mixture of agents",
}


@dataclass(slots=True)
class Answer:
    """A finished call: the JSON to return (an upstream's own bytes when there are some)."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Events:
    """A streamed call: the chunks, ending normally or with one ``StreamFailed``."""

    events: AsyncIterator[StreamEvent]
    headers: dict[str, str] = field(default_factory=dict)


def unsupported(model: str, what: str, endpoint: str) -> InvalidRequest:
    return InvalidRequest(
        f"The model `{model}` is {what} and cannot serve /{endpoint}",
        param="model",
        code="model_not_supported",
    )


async def read_call(
    logger: RequestLogger,
    principal: Principal,
    raw: bytes,
    headers: Mapping[str, str],
    schema: type[T],
    endpoint: str,
) -> tuple[CallLog, dict[str, Any], T]:
    """Parse and validate; a failure here is logged (when logging is on) and raised."""
    call = CallLog(
        project_id=principal.project.id,
        requested_at=now_ms(),
        model=None,
        request=raw,
        enabled=not principal.read_only and headers.get("op-log-request", "").lower() != "false",
        endpoint=endpoint,
    )
    try:
        body = _decode(raw)
        if not isinstance(body, dict):
            raise InvalidRequest("Request body must be a JSON object")
        call.request = body
        if isinstance(body.get("model"), str):
            call.model = body["model"]
        metadata = body.get("metadata")
        call.metadata = merge_labels(metadata if isinstance(metadata, dict) else None)
        options = read_options(headers)
        call.metadata = merge_labels(metadata if isinstance(metadata, dict) else None, options.tags)
        try:
            request = schema.model_validate(body)
        except ValidationError as exc:
            message, param = _validation_message(exc, body)
            raise InvalidRequest(message, param=param) from exc
    except InvalidRequest as exc:
        if isinstance(call.request, bytes):
            call.request = {"raw": call.request.decode("utf-8", "replace")}
        await logger.failure(call, exc)
        raise
    call.enabled = options.log_request and body.get("store") is not False and not principal.read_only
    return call, body, request


async def upstream(
    router: Router, principal: Principal, ref: ModelRef, model: str, endpoint: str
) -> tuple[Route, OpenAICompatProvider]:
    """The route of a remote model that has ``endpoint``: OpenAI or an external provider."""
    if ref.kind not in (RouteKind.OPENAI, RouteKind.EXTERNAL):
        raise unsupported(model, _KIND_NAMES.get(ref.kind, "not a remote model"), endpoint)
    route = await router.resolve(principal, ref)
    if not isinstance(route.provider, OpenAICompatProvider):
        raise unsupported(model, "not served by an OpenAI-compatible upstream", endpoint)
    return route, route.provider


def forwarded(body: dict[str, Any], route: Route) -> dict[str, Any]:
    """The caller's body as the upstream should see it: its own model name, no log labels."""
    out = dict(body)
    out["model"] = route.ref.name
    out.pop("metadata", None)
    out.pop("store", None)
    return out
