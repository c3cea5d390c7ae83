"""The legacy ``functions`` form: a request that sends ``functions`` (and no ``tools``) gets the
legacy answer back, one ``function_call`` instead of ``tool_calls`` and the finish reason
``function_call``, whichever provider answered it (the old OpenAI SDKs and code built on them
read only that form). Providers that work in tools underneath (Anthropic, the local engine)
turn their answers back with these.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

JSON = dict[str, Any]


def asked_for_functions(body: JSON) -> bool:
    """A request in the legacy form (``functions``, no ``tools``) wants the legacy answer back:
    one ``function_call`` instead of ``tool_calls``, finish reason ``function_call``."""
    return bool(body.get("functions")) and not body.get("tools")


def _as_function_call(call: JSON) -> JSON:
    function = call.get("function") or {}
    return {k: function[k] for k in ("name", "arguments") if function.get(k) is not None}


def as_function_call(completion: JSON) -> JSON:
    """A ``chat.completion`` with its first tool call as the legacy ``function_call``."""
    for choice in completion.get("choices") or []:
        message = choice.get("message") or {}
        calls = message.pop("tool_calls", None)
        if calls:
            message["function_call"] = _as_function_call(calls[0])
        if choice.get("finish_reason") == "tool_calls":
            choice["finish_reason"] = "function_call"
    return completion


def chunk_as_function_call(chunk: JSON) -> JSON:
    """The same for a stream chunk: deltas of the first tool call become ``function_call`` deltas."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        calls = delta.pop("tool_calls", None)
        first = [c for c in calls or [] if c.get("index", 0) == 0]
        if first:
            delta["function_call"] = _as_function_call(first[0])
        if choice.get("finish_reason") == "tool_calls":
            choice["finish_reason"] = "function_call"
    return chunk


async def legacy_chunks(chunks: AsyncIterator[JSON]) -> AsyncIterator[JSON]:
    """A stream's chunks in the legacy form (closing the inner stream however this one ends)."""
    try:
        async for chunk in chunks:
            yield chunk_as_function_call(chunk)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
