"""Running a fine-tune's held-out TEST rows through it (spec B.3: "the test set is automatically
run through the new model"), and judging each answer by exact match
(:mod:`tunepipe.domain.answers` says how a row is asked and what counts as a match). A few rows
run at once so the engine can batch them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from tunepipe.domain.answers import answer_request, exact_match
from tunepipe.domain.fine_tunes import TestOutput
from tunepipe.providers.base import ChatProvider

log = logging.getLogger(__name__)

CONCURRENCY = 4


async def _one(provider: ChatProvider, entry_id: str, row: dict[str, Any]) -> TestOutput:
    try:
        completion = await provider.complete(answer_request(row))
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
