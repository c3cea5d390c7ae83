"""What ``GET /models`` lists: the project's fine-tunes, then every model it can route to."""

from __future__ import annotations

from dataclasses import dataclass
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
    """A model tunepipe routes to but did not train (context 0: unknown)."""

    id: str
    owner: str
    created_s: int
    context: int = 0
    price: Price | None = None
