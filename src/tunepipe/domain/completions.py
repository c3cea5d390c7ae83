"""A finished chat completion, as providers return it and the gateway's use cases pass it on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Completion:
    """``data`` is the OpenAI ``chat.completion`` shape; ``raw`` the upstream bytes when they
    already are exactly that shape (so the gateway can return them without re-encoding);
    ``headers`` what the gateway says about the call (cache status, the model that answered,
    rate limits); ``cost`` a provider's own reckoning, when it is more than one priced call
    (mixture of agents)."""

    data: dict[str, Any]
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cost: float | None = None
