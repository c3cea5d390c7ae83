"""What a ``model`` string names, decided without I/O.

``gpt-4o`` and ``openai:gpt-4o`` go to OpenAI; ``anthropic:…`` and ``gemini:…`` to those
providers; ``openpipe:<provider>/<model>`` to a project's external provider; and
``openpipe:<slug>`` to a model trained by tunepipe; ``local:<name>`` to a base model run
in-process by the local engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tunepipe.errors import InvalidRequest


class RouteKind(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    EXTERNAL = "external"
    FINE_TUNE = "fine_tune"
    LOCAL = "local"


_PREFIXES = {
    "openai:": RouteKind.OPENAI,
    "anthropic:": RouteKind.ANTHROPIC,
    "gemini:": RouteKind.GEMINI,
    "local:": RouteKind.LOCAL,
}


@dataclass(frozen=True, slots=True)
class ModelRef:
    kind: RouteKind
    name: str  # the model name the upstream expects
    provider_slug: str | None = None  # external provider, for RouteKind.EXTERNAL
    prefixed: bool = False  # whether the caller wrote a provider prefix

    @property
    def is_plain_openai(self) -> bool:
        """OpenAI through the project's OpenAI key (what read-only keys may not do)."""
        return self.kind is RouteKind.OPENAI


def parse_model(model: str) -> ModelRef:
    """Parse a ``model`` field; raise :class:`InvalidRequest` for an unusable one."""
    if not model or not model.strip():
        raise InvalidRequest("`model` must be a non-empty string", param="model")
    for prefix, kind in _PREFIXES.items():
        if model.startswith(prefix):
            name = model[len(prefix) :]
            if not name:
                raise InvalidRequest(f"Model name missing after `{prefix}`", param="model")
            return ModelRef(kind, name, prefixed=True)
    if model.startswith("openpipe:"):
        rest = model[len("openpipe:") :]
        if not rest:
            raise InvalidRequest("Model name missing after `openpipe:`", param="model")
        provider, sep, name = rest.partition("/")
        if sep:
            if not provider or not name:
                raise InvalidRequest(
                    "External models are addressed as `openpipe:<provider-slug>/<model-slug>`",
                    param="model",
                )
            return ModelRef(RouteKind.EXTERNAL, name, provider_slug=provider, prefixed=True)
        return ModelRef(RouteKind.FINE_TUNE, rest, prefixed=True)
    return ModelRef(RouteKind.OPENAI, model)
