"""Running a fine-tune's held-out TEST rows through it (spec B.3: "the test set is automatically
run through the new model"), and judging each answer by exact match.

Generation is greedy (temperature 0) with each row's own tools, tool_choice and response_format,
so a rerun gives the same outputs. ``max_tokens`` follows the expected answer's length (twice its
estimated tokens plus 64, at most 1,024): long enough for a right answer, short enough that a
model that never stops does not hold the worker for minutes. A few rows run at once so the
engine can batch them.

Exact match: the content equal after stripping whitespace, and the same tool calls in order (same
function names, JSON-equal arguments).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from tunepipe.domain.fine_tunes import TestOutput
from tunepipe.domain.pruning import estimate_tokens
from tunepipe.providers.base import ChatProvider

log = logging.getLogger(__name__)

CONCURRENCY = 4
MAX_TOKENS_CAP = 1024


def max_tokens_for(expected: dict[str, Any]) -> int:
    """Room for an answer like ``expected`` (an assistant message)."""
    text = expected.get("content") if isinstance(expected.get("content"), str) else ""
    calls = orjson.dumps(expected.get("tool_calls") or []).decode() if expected.get("tool_calls") else ""
    return min(MAX_TOKENS_CAP, estimate_tokens(str(text) + calls) * 2 + 64)


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


def request_for(row: dict[str, Any]) -> dict[str, Any]:
    """The chat request a TEST row stands for (its messages are already pruned)."""
    body: dict[str, Any] = {
        "messages": row["messages"],
        "temperature": 0,
        "max_tokens": max_tokens_for(row.get("output") or {}),
    }
    for key in ("tools", "tool_choice", "response_format"):
        if row.get(key) is not None:
            body[key] = row[key]
    return body


async def _one(provider: ChatProvider, entry_id: str, row: dict[str, Any]) -> TestOutput:
    try:
        completion = await provider.complete(request_for(row))
    except Exception as exc:  # one row failing must not stop the others; recorded on the row
        log.warning("test row %s failed: %s", entry_id, exc)
        return TestOutput(
            entry_id=entry_id,
            output=None,
            finish_reason=None,
            error_message=str(exc) or type(exc).__name__,
            exact_match=None,
            prompt_tokens=None,
            completion_tokens=None,
        )
    data = completion.data
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    return TestOutput(
        entry_id=entry_id,
        output=message,
        finish_reason=choice.get("finish_reason"),
        error_message=None,
        exact_match=exact_match(message, row.get("output") or {}),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
    )


async def run_rows(
    provider: ChatProvider, rows: Sequence[tuple[str, dict[str, Any]]], *, concurrency: int = CONCURRENCY
) -> list[TestOutput]:
    """Generate and judge every ``(entry_id, row)``; outputs in the rows' order."""
    gate = asyncio.Semaphore(concurrency)

    async def guarded(entry_id: str, row: dict[str, Any]) -> TestOutput:
        async with gate:
            return await _one(provider, entry_id, row)

    return list(await asyncio.gather(*(guarded(e, r) for e, r in rows)))
