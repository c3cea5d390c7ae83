"""The request a dataset entry stands for when a model is asked to answer it (a fine-tune's test
set, an evaluation, an alignment set's outputs), and exact match of two answers.

Generation is greedy (temperature 0) with the entry's own tools, tool_choice and
response_format, so a rerun gives the same answer. ``max_tokens`` follows the expected answer's
length (twice its estimated tokens plus 64, at most 1,024): long enough for a right answer,
short enough that a model that never stops does not hold a worker for minutes.

Exact match: the content equal after stripping whitespace, and the same tool calls in order (same
function names, JSON-equal arguments).
"""

from __future__ import annotations

from typing import Any

import orjson

from tunepipe.domain.pruning import estimate_tokens

MAX_TOKENS_CAP = 1024


def max_tokens_for(expected: dict[str, Any]) -> int:
    """Room for an answer like ``expected`` (an assistant message)."""
    text = expected.get("content") if isinstance(expected.get("content"), str) else ""
    calls = orjson.dumps(expected.get("tool_calls") or []).decode() if expected.get("tool_calls") else ""
    return min(MAX_TOKENS_CAP, estimate_tokens(str(text) + calls) * 2 + 64)


def answer_request(row: dict[str, Any]) -> dict[str, Any]:
    """The chat request (no ``model``) for a row ``{messages, output, tools?, tool_choice?,
    response_format?}``."""
    body: dict[str, Any] = {
        "messages": row["messages"],
        "temperature": 0,
        "max_tokens": max_tokens_for(row.get("output") or {}),
    }
    for key in ("tools", "tool_choice", "response_format"):
        if row.get(key) is not None:
            body[key] = row[key]
    return body


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return (content or "").strip() if isinstance(content, str) else ""


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw


def _calls(message: dict[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for call in message.get("tool_calls") or []:
        fn = (call or {}).get("function") or {}
        out.append((str(fn.get("name")), _arguments(fn.get("arguments"))))
    return out


def exact_match(output: dict[str, Any], expected: dict[str, Any]) -> bool:
    return _content(output) == _content(expected) and _calls(output) == _calls(expected)
