"""The legacy Completions request (``POST /completions``) and its answer, as OpenAI defines them.

Validation only, as for chat: the caller's JSON is forwarded (``model`` rewritten) and unknown
fields are kept; typed fields are strict, as chat's are. ``prompt`` is a string, a list of
strings, one array of token ids, or a list of such arrays; answers are ``text_completion``
objects, streamed as chunks of the same shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunepipe.protocol.types import WholeNumber

Prompt = str | list[str] | list[WholeNumber] | list[list[WholeNumber]]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: bool | None = None


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    prompt: Prompt
    best_of: WholeNumber | None = Field(default=None, ge=0, le=20)
    echo: bool | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logprobs: WholeNumber | None = Field(default=None, ge=0, le=5)
    max_tokens: WholeNumber | None = Field(default=None, ge=0)
    n: WholeNumber | None = Field(default=None, ge=1, le=128)
    seed: WholeNumber | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    user: str | None = None
    metadata: dict[str, str] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: Prompt) -> Prompt:
        if isinstance(value, list) and not value:
            raise ValueError("give a prompt")
        return value

    def prompts(self) -> list[str] | list[list[int]]:
        """The prompts as a list: strings, or token-id arrays."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if isinstance(self.prompt[0], int):
            return [[int(t) for t in self.prompt if isinstance(t, int)]]
        return list(self.prompt)  # type: ignore[return-value]


class TextAssembler:
    """Builds the ``text_completion`` a stream amounted to, for the log: each choice's text
    joined, its finish reason, and the usage chunk's counts."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._texts: dict[int, list[str]] = {}
        self._finish: dict[int, str | None] = {}
        self._usage: Any = None

    def feed(self, chunk: dict[str, Any]) -> None:
        if not self._head:
            self._head = {k: chunk.get(k) for k in ("id", "created", "model")}
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index") or 0)
            self._texts.setdefault(index, []).append(str(choice.get("text") or ""))
            if choice.get("finish_reason") is not None or index not in self._finish:
                self._finish[index] = choice.get("finish_reason")

    def completion(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self._head, "object": "text_completion"}
        out["choices"] = [
            {
                "index": i,
                "text": "".join(self._texts[i]),
                "finish_reason": self._finish.get(i),
                "logprobs": None,
            }
            for i in sorted(self._texts)
        ]
        if self._usage is not None:
            out["usage"] = self._usage
        return out
