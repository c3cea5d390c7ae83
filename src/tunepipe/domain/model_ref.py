"""What a ``model`` string names, decided without I/O.

``gpt-4o`` and ``openai:gpt-4o`` go to OpenAI; ``anthropic:…`` and ``gemini:…`` to those
providers; ``openpipe:<provider>/<model>`` to a project's external provider; and
``openpipe:<slug>`` to a model trained by tunepipe; ``local:<name>`` to a base model run
in-process by the local engine; ``moa:<model>`` to a mixture of agents over any of those
(:mod:`tunepipe.domain.moa`).

``openpipe:moa-<…>`` stays a fine-tune reference here: whether it names a built-in mixture, a
project's configuration or nothing is the router's question, since only it can look.
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
    MOA = "moa"


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


MOA_PREFIX = "moa:"
MOA_SLUG_PREFIX = "moa-"
"""``openpipe:moa-<…>`` names a mixture of agents (fine-tune slugs may not start with it)."""


def names_moa(ref: ModelRef) -> bool:
    """Whether ``ref`` is (or may be) a mixture of agents rather than one model."""
    return ref.kind is RouteKind.MOA or (
        ref.kind is RouteKind.FINE_TUNE and ref.name.startswith(MOA_SLUG_PREFIX)
    )


LOCAL_PROVIDER = "local"
"""``openpipe:local/<id>`` names the model ``local:<id>``: no external provider may take the slug."""


def parse_model(model: str) -> ModelRef:
    """Parse a ``model`` field; raise :class:`InvalidRequest` for an unusable one."""
    if not model or not model.strip():
        raise InvalidRequest("`model` must be a non-empty string", param="model")
    if model.startswith(MOA_PREFIX):
        inner = model[len(MOA_PREFIX) :]
        if not inner:
            raise InvalidRequest(f"Model name missing after `{MOA_PREFIX}`", param="model")
        # The inner name must route on its own; a mixture of mixtures is refused (its cost and
        # latency multiply, and nothing is gained that more candidates would not give).
        if names_moa(parse_model(inner)):
            raise InvalidRequest(
                f"`{model}`: a mixture of agents cannot be made of another mixture", param="model"
            )
        return ModelRef(RouteKind.MOA, inner, prefixed=True)
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
        if sep and provider == LOCAL_PROVIDER:
            # The name the openpipe SDK forwards (it sends only `openpipe:`, `openai:`,
            # `anthropic:` and `gemini:` models to the gateway): `local:<id>` by another name.
            if not name:
                raise InvalidRequest("Model name missing after `openpipe:local/`", param="model")
            return ModelRef(RouteKind.LOCAL, name, prefixed=True)
        if sep:
            if not provider or not name:
                raise InvalidRequest(
                    "External models are addressed as `openpipe:<provider-slug>/<model-slug>`",
                    param="model",
                )
            return ModelRef(RouteKind.EXTERNAL, name, provider_slug=provider, prefixed=True)
        return ModelRef(RouteKind.FINE_TUNE, rest, prefixed=True)
    return ModelRef(RouteKind.OPENAI, model)
