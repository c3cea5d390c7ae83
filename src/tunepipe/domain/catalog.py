"""What ``GET /models`` lists: the project's fine-tunes, then every model it can route to."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tunepipe.domain.fine_tunes import FineTune
from tunepipe.domain.pricing import Price


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A fine-tune of the project, with its training progress and base model's context."""

    fine_tune: FineTune
    progress: dict[str, Any]
    context: int
    owner: str


@dataclass(frozen=True, slots=True)
class RoutedModel:
    """A model tunepipe routes to but did not train (context and output limit 0: unknown)."""

    id: str
    owner: str
    created_s: int
    context: int = 0
    max_output: int = 0
    price: Price | None = None

    def named(self, model_id: str) -> RoutedModel:
        """The same model under another name that routes to it (``openai:gpt-4o`` for ``gpt-4o``)."""
        return replace(self, id=model_id)
