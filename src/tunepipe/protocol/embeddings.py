"""The Embeddings request and answer, as OpenAI defines them.

Validation only, as for chat: the caller's JSON is what an upstream receives (``model``
rewritten), and unknown fields are kept; typed fields are strict, as chat's are. ``input`` is
one string, a list of strings, one array of token ids, or a list of such arrays. Answers carry
each vector as a list of floats or, with ``encoding_format: "base64"`` (what the ``openai`` SDK
asks for unless told otherwise), as the base64 of its little-endian float32 bytes.

The log keeps a summary of an answer (how many vectors, of what size) instead of the vectors:
they are large, and nobody reads them back from a log.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunepipe.protocol.types import WholeNumber

MAX_INPUTS = 2048
"""OpenAI's limit on the number of inputs in one request."""

EmbeddingInput = str | list[str] | list[WholeNumber] | list[list[WholeNumber]]


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: WholeNumber | None = Field(default=None, ge=1)
    user: str | None = None
    metadata: dict[str, str] | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: EmbeddingInput) -> EmbeddingInput:
        if isinstance(value, str):
            if not value:
                raise ValueError("an input must not be empty")
            return value
        if not value:
            raise ValueError("give at least one input")
        if len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs per request")
        for item in value:
            if isinstance(item, int) and item < 0:
                raise ValueError("token ids are not negative")
            if isinstance(item, str | list) and not item:
                raise ValueError("an input must not be empty")
            if isinstance(item, list) and any(t < 0 for t in item):
                raise ValueError("token ids are not negative")
        return value

    def inputs(self) -> list[str] | list[list[int]]:
        """The inputs as a list: strings, or token-id arrays."""
        if isinstance(self.input, str):
            return [self.input]
        if self.input and isinstance(self.input[0], int):
            return [[int(t) for t in self.input if isinstance(t, int)]]
        return list(self.input)  # type: ignore[return-value]


def encode_base64(vector: Sequence[float]) -> str:
    """A vector as OpenAI sends it with ``encoding_format: "base64"``: little-endian float32."""
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embedding_list(
    model: str, vectors: Sequence[Sequence[float]], *, encoding_format: str | None, prompt_tokens: int
) -> dict[str, Any]:
    """The ``list`` of ``embedding`` objects OpenAI answers with."""
    encode = encoding_format == "base64"
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_base64(v) if encode else list(v)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _dimensions(embedding: Any) -> int | None:
    if isinstance(embedding, list):
        return len(embedding)
    if isinstance(embedding, str):
        try:
            return len(base64.b64decode(embedding, validate=True)) // 4
        except ValueError:
            return None
    return None


def log_summary(answer: dict[str, Any]) -> dict[str, Any]:
    """What the log keeps of an embeddings answer: everything but the vectors, which become
    their count and size (``{"count", "dimensions", "encoding"}`` under ``embeddings``)."""
    data = answer.get("data")
    items = data if isinstance(data, list) else []
    first = items[0].get("embedding") if items and isinstance(items[0], dict) else None
    summary = {k: v for k, v in answer.items() if k != "data"}
    summary["data"] = []
    summary["embeddings"] = {
        "count": len(items),
        "dimensions": _dimensions(first),
        "encoding": "base64" if isinstance(first, str) else "float",
    }
    return summary
