"""A finished chat completion, as providers return it and the gateway's use cases pass it on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Completion:
    """``data`` is the OpenAI ``chat.completion`` shape; ``raw`` the upstream bytes when they
    already are exactly that shape (so the gateway can return them without re-encoding)."""

    data: dict[str, Any]
    raw: bytes | None = None
