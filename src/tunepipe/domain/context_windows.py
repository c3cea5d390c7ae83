"""Context windows and output limits of the hosted models tunepipe lists.

Sizes are in tokens, as each provider publishes them. A dated model name takes the limits of its
longest listed prefix at a name boundary (``gpt-4o-2024-08-06`` → ``gpt-4o``), as prices do
(:mod:`tunepipe.domain.pricing`). A model not listed here has unknown limits (``None``): a guess
would mislead a client that sizes its prompts by them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunepipe.domain.model_ref import RouteKind


@dataclass(frozen=True, slots=True)
class Limits:
    context: int
    max_output: int


_OPENAI: dict[str, tuple[int, int]] = {
    "gpt-5": (400_000, 128_000),
    "gpt-5-mini": (400_000, 128_000),
    "gpt-5-nano": (400_000, 128_000),
    "gpt-4.1": (1_047_576, 32_768),
    "gpt-4.1-mini": (1_047_576, 32_768),
    "gpt-4.1-nano": (1_047_576, 32_768),
    "gpt-4o": (128_000, 16_384),
    "gpt-4o-2024-05-13": (128_000, 4_096),
    "gpt-4o-mini": (128_000, 16_384),
    "gpt-4-turbo": (128_000, 4_096),
    "gpt-4": (8_192, 8_192),
    "gpt-3.5-turbo": (16_385, 4_096),
    "o1": (200_000, 100_000),
    "o1-mini": (128_000, 65_536),
    "o3": (200_000, 100_000),
    "o3-mini": (200_000, 100_000),
    "o4-mini": (200_000, 100_000),
}

_ANTHROPIC: dict[str, tuple[int, int]] = {
    "claude-opus-4": (200_000, 32_000),
    "claude-sonnet-4": (200_000, 64_000),
    "claude-3-7-sonnet": (200_000, 64_000),
    "claude-3-5-sonnet": (200_000, 8_192),
    "claude-3-5-haiku": (200_000, 8_192),
    "claude-3-opus": (200_000, 4_096),
    "claude-3-sonnet": (200_000, 4_096),
    "claude-3-haiku": (200_000, 4_096),
}

_GEMINI: dict[str, tuple[int, int]] = {
    "gemini-2.5-pro": (1_048_576, 65_536),
    "gemini-2.5-flash": (1_048_576, 65_536),
    "gemini-2.5-flash-lite": (1_048_576, 65_536),
    "gemini-2.0-flash": (1_048_576, 8_192),
    "gemini-2.0-flash-lite": (1_048_576, 8_192),
    "gemini-1.5-pro": (2_097_152, 8_192),
    "gemini-1.5-flash": (1_048_576, 8_192),
    "gemini-1.5-flash-8b": (1_048_576, 8_192),
}

_TABLES = {RouteKind.OPENAI: _OPENAI, RouteKind.ANTHROPIC: _ANTHROPIC, RouteKind.GEMINI: _GEMINI}


def limits_for(kind: RouteKind, name: str) -> Limits | None:
    """The published limits of ``name`` at provider ``kind``; ``None`` if not listed."""
    table = _TABLES.get(kind, {})
    name = name.removeprefix("models/")
    best = ""
    for key in table:
        at_boundary = name[len(key) : len(key) + 1] in ("", "-", ":", "@")
        if name.startswith(key) and at_boundary and len(key) > len(best):
            best = key
    return Limits(*table[best]) if best else None
