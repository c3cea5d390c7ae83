"""Values exchanged with the engine: what to generate, and what comes back, token by token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """OpenAI's sampling surface. ``temperature == 0`` means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: tuple[tuple[str, float, list[int]], ...] = ()

    def as_openai(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "logprob": self.logprob,
            "bytes": self.bytes,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": b} for t, lp, b in self.top],
        }


@dataclass(slots=True)
class Delta:
    """New text of one sequence (possibly empty while a stop string is pending)."""

    index: int
    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" | "length" | "error" once finished
    completion_tokens: int = 0
    error: str | None = None


@dataclass(slots=True)
class SequenceSpec:
    """One sequence to generate (a request with ``n`` choices becomes ``n`` of these)."""

    index: int
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None = None
    # A fresh constraint matcher for this sequence (see engine/constrained.py), or None.
    constraint: Any = None


Emit = Callable[[Delta], None]
