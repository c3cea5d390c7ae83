"""The criteria step of the chat pipeline (``op-criteria``, spec A.1 and B.6).

The criteria are looked up before the upstream call, so an unknown id is a 404 that costs no
tokens. After the completion, every (choice, criterion) pair is judged concurrently; each
choice gets ``criteria_results`` keyed by criterion name, a failing judge spoiling only its own
entry. With ``n > 1`` the choices are re-sorted best first by combined score (and renumbered,
so ``index`` stays the position). A stream gets the results in one extra chunk, a choice entry
per index, after its last chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from tunepipe.db import criteria as repo
from tunepipe.db.database import Database
from tunepipe.domain.criteria import (
    Criterion,
    CriterionResult,
    Sample,
    combined_score,
    not_found,
    parse_criterion_id,
)
from tunepipe.domain.projects import Principal
from tunepipe.services.gateway.judge import Judge, JudgeLog


def resolve_ids(conn: Connection, project_id: str, ids: Sequence[str]) -> list[Criterion]:
    """The criteria ``ids`` name (``name`` = latest, ``name@vN``); raises the 404 naming the first
    one missing. Duplicates by name keep the first."""
    found: dict[str, Criterion] = {}
    for raw in ids:
        ref = parse_criterion_id(raw)
        criterion = repo.get(conn, project_id, ref.name, ref.version)
        if criterion is None:
            if ref.version is not None and repo.exists(conn, project_id, ref.name):
                raise not_found(ref.name, ref.version)
            raise not_found(ref.name)
        found.setdefault(criterion.name, criterion)
    return list(found.values())


def choice_sample(body: dict[str, Any], message: dict[str, Any]) -> Sample:
    return Sample(
        messages=list(body.get("messages") or []),
        output=message,
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
    )


class CriteriaStep:
    def __init__(self, db: Database, judge: Judge) -> None:
        self._db = db
        self._judge = judge

    async def resolve(self, principal: Principal, ids: Sequence[str]) -> list[Criterion]:
        if not ids:
            return []
        return await self._db.run(resolve_ids, principal.project.id, ids)

    async def judge_choices(
        self,
        principal: Principal,
        criteria: Sequence[Criterion],
        body: dict[str, Any],
        completion: dict[str, Any],
        *,
        log: JudgeLog | None,
    ) -> dict[int, list[CriterionResult]]:
        """Every choice judged by every criterion: results by choice index."""
        choices = [c for c in completion.get("choices") or [] if isinstance(c, dict)]
        jobs = [
            (int(choice.get("index", i)), criterion, choice_sample(body, choice.get("message") or {}))
            for i, choice in enumerate(choices)
            for criterion in criteria
        ]
        judged = await asyncio.gather(
            *(self._judge.criterion(principal, criterion, sample, log=log) for _, criterion, sample in jobs)
        )
        results: dict[int, list[CriterionResult]] = {}
        for (index, _, _), outcome in zip(jobs, judged, strict=True):
            results.setdefault(index, []).append(outcome.result)
        return results


def attach(
    completion: dict[str, Any], results: dict[int, list[CriterionResult]]
) -> list[tuple[int, CriterionResult]]:
    """Put ``criteria_results`` on each choice, best first when there are several; return the
    results by the choices' final indexes (what the log stores)."""
    choices = [c for c in completion.get("choices") or [] if isinstance(c, dict)]
    for i, choice in enumerate(choices):
        mine = results.get(int(choice.get("index", i)), [])
        choice["criteria_results"] = {r.name: r.wire() for r in mine}
        choice["_combined"] = combined_score(mine)
        choice["_results"] = mine
    if len(choices) > 1:
        choices.sort(key=lambda c: -float(c["_combined"]))  # stable: ties keep their order
    stored: list[tuple[int, CriterionResult]] = []
    for position, choice in enumerate(choices):
        choice["index"] = position
        stored.extend((position, r) for r in choice.pop("_results"))
        choice.pop("_combined")
    completion["choices"] = choices
    return stored


def results_chunk(completion: dict[str, Any], results: dict[int, list[CriterionResult]]) -> dict[str, Any]:
    """The extra stream chunk: one entry per choice index with its ``criteria_results``."""
    finish = {
        int(c.get("index", i)): c.get("finish_reason")
        for i, c in enumerate(completion.get("choices") or [])
        if isinstance(c, dict)
    }
    return {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
        "choices": [
            {
                "index": index,
                "delta": {},
                "finish_reason": finish.get(index),
                "criteria_results": {r.name: r.wire() for r in found},
            }
            for index, found in sorted(results.items())
        ],
    }
