"""List prices of common hosted models, and the cost of one call.

Prices are USD per million tokens (input, output), as published by each provider; a dated
model name takes the price of its longest listed prefix (``gpt-4o-mini-2024-07-18`` →
``gpt-4o-mini``). Unknown models cost ``None`` rather than a guess. External models carry their
own prices, set when they are registered.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tunepipe.domain.model_ref import RouteKind


@dataclass(frozen=True, slots=True)
class Price:
    input_per_m: float
    output_per_m: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6


_OPENAI: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.0),
    "gpt-4o-2024-05-13": (5.0, 15.0),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4": (30.0, 60.0),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-1106": (1.0, 2.0),
    "gpt-3.5-turbo-instruct": (1.50, 2.0),
    # Embeddings: input tokens only.
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
    "o1": (15.0, 60.0),
    "o1-mini": (1.10, 4.40),
    "o3": (2.0, 8.0),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    # OpenAI fine-tunes are billed above their base models.
    "ft:gpt-4.1": (3.0, 12.0),
    "ft:gpt-4.1-mini": (0.80, 3.20),
    "ft:gpt-4.1-nano": (0.20, 0.80),
    "ft:gpt-4o": (3.75, 15.0),
    "ft:gpt-4o-mini": (0.30, 1.20),
    "ft:gpt-3.5-turbo": (3.0, 6.0),
}

_ANTHROPIC: dict[str, tuple[float, float]] = {
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-3-5-haiku": (0.80, 4.0),
    "claude-3-opus": (15.0, 75.0),
    "claude-3-sonnet": (3.0, 15.0),
    "claude-3-haiku": (0.25, 1.25),
}

_GEMINI: dict[str, tuple[float, float]] = {
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-1.5-pro": (1.25, 5.0),
    "gemini-1.5-flash": (0.075, 0.30),
    "gemini-1.5-flash-8b": (0.0375, 0.15),
}

_TABLES = {RouteKind.OPENAI: _OPENAI, RouteKind.ANTHROPIC: _ANTHROPIC, RouteKind.GEMINI: _GEMINI}


def _longest_prefix(table: dict[str, tuple[float, float]], name: str) -> Price | None:
    best = ""
    for key in table:
        # A prefix counts only at a name boundary: `gpt-4` prices `gpt-4-0613`, not `gpt-4.5-preview`.
        at_boundary = name[len(key) : len(key) + 1] in ("", "-", ":", "@")
        if name.startswith(key) and at_boundary and len(key) > len(best):
            best = key
    return Price(*table[best]) if best else None


# Memoised: every proxied call prices its model, and the tables never change at run time.
@functools.lru_cache(maxsize=4096)
def price_for(kind: RouteKind, name: str) -> Price | None:
    """The list price of ``name`` at provider ``kind``; ``None`` if not listed."""
    table = _TABLES.get(kind)
    if table is None:
        return None
    return _longest_prefix(table, name.removeprefix("models/"))


def guess_price(model: str) -> Price | None:
    """Price a model string from any provider (used for reported calls, which carry no route)."""
    for prefix, kind in (
        ("openai:", RouteKind.OPENAI),
        ("anthropic:", RouteKind.ANTHROPIC),
        ("gemini:", RouteKind.GEMINI),
    ):
        if model.startswith(prefix):
            return price_for(kind, model[len(prefix) :])
    for kind in _TABLES:
        price = price_for(kind, model)
        if price is not None:
            return price
    return None


def listed_models(kind: RouteKind) -> list[str]:
    """The base model names with a listed price (fine-tune entries excluded)."""
    return [name for name in _TABLES.get(kind, {}) if not name.startswith("ft:")]
