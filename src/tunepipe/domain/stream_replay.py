"""Replay a stored ``chat.completion`` as the ``chat.completion.chunk`` events a live stream of it
would have sent: per choice a role chunk, the content a word at a time, each tool call (its id
and name, then its arguments in pieces), the finish reason; then the usage chunk when asked.
The inverse of :mod:`tunepipe.domain.stream_assembly` (assembling the replay gives back the
completion), so a cache hit on a streamed request looks like any stream to a client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_PIECES = re.compile(r"\S+\s*|\s+")
ARGUMENT_PIECE = 16


def _pieces(text: str) -> list[str]:
    """Words with their following whitespace: joined, the text again."""
    return _PIECES.findall(text) or [text]


def replay(completion: dict[str, Any], *, include_usage: bool) -> Iterator[dict[str, Any]]:
    head = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    if completion.get("system_fingerprint"):
        head["system_fingerprint"] = completion["system_fingerprint"]

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        out = {**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish, **extra}]}
        if include_usage:
            out["usage"] = None
        return out

    for i, choice in enumerate(completion.get("choices") or []):
        index = int(choice.get("index", i))
        message = choice.get("message") or {}
        yield chunk(index, {"role": message.get("role") or "assistant", "content": ""})
        for key in ("reasoning_content", "content", "refusal"):
            text = message.get(key)
            if isinstance(text, str) and text:
                for piece in _pieces(text):
                    yield chunk(index, {key: piece})
        if message.get("function_call"):
            fc = message["function_call"]
            yield chunk(index, {"function_call": {"name": fc.get("name") or "", "arguments": ""}})
            yield from (
                chunk(index, {"function_call": {"arguments": p}}) for p in _split(fc.get("arguments"))
            )
        for k, call in enumerate(message.get("tool_calls") or []):
            fn = call.get("function") or {}
            opening = {"index": k, "id": call.get("id"), "type": "function"}
            yield chunk(
                index, {"tool_calls": [{**opening, "function": {"name": fn.get("name"), "arguments": ""}}]}
            )
            for piece in _split(fn.get("arguments")):
                yield chunk(index, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
        extra = {"logprobs": choice["logprobs"]} if choice.get("logprobs") else {}
        yield chunk(index, {}, choice.get("finish_reason") or "stop", **extra)
    if include_usage and completion.get("usage"):
        yield {**head, "choices": [], "usage": completion["usage"]}


def _split(arguments: Any) -> list[str]:
    text = arguments if isinstance(arguments, str) else ""
    return [text[i : i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)] or [""]
