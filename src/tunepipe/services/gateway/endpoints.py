"""What ``/embeddings`` and ``/completions`` share (the call is read as chat's is,
:func:`~tunepipe.services.gateway.requests.read_call`): deciding whether the model can serve the
endpoint at all, and the body an OpenAI-compatible upstream receives.

These endpoints go through routing, rate limits and the log like chat, but not through the
chat-only steps (response cache, fallbacks, criteria, mixtures): those are defined on chat
completions. Only OpenAI and a project's external OpenAI-compatible providers have these
endpoints upstream; local models are served in-process (encoders embed, causal models
complete); every other kind of model gets a 400 with ``param: "model"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tunepipe.domain.model_ref import ModelRef, RouteKind
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest
from tunepipe.providers.openai_compat import OpenAICompatProvider
from tunepipe.services.gateway.chat import StreamEvent
from tunepipe.services.gateway.routing import Route, Router

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
