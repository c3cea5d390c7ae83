"""Use cases over criteria: create a version, list, get, delete, and judge one output offline
(``POST /criteria/judge``, the SDK's ``get_criterion_judgement``).

Posting a name that exists makes its next version; versions never change, so a result recorded
as ``name@v2`` always means the same judge. ``name`` alone resolves to the latest version at the
moment of use.
"""

from __future__ import annotations

from sqlalchemy import Connection

from tunepipe.db import criteria as repo
from tunepipe.db.database import Database
from tunepipe.domain.criteria import (
    Criterion,
    Sample,
    check_name,
    check_variables,
    not_found,
    parse_criterion_id,
)
from tunepipe.domain.model_ref import parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import for_status
from tunepipe.protocol.criteria import CreateCriterionRequest, JudgeRequest
from tunepipe.services.gateway.criteria import resolve_ids
from tunepipe.services.gateway.judge import Judge, Judged, JudgeLog


def criterion_in(conn: Connection, principal: Principal, criterion_id: str) -> Criterion:
    """The project's criterion ``name`` (latest) or ``name@vN``; the 404 OpenPipe words otherwise."""
    return resolve_ids(conn, principal.project.id, [criterion_id])[0]


class CriteriaService:
    def __init__(self, db: Database, judge: Judge) -> None:
        self._db = db
        self._judge = judge

    async def create(self, principal: Principal, body: CreateCriterionRequest) -> Criterion:
        name = check_name(body.name)
        variables = check_variables(body.variables)
        parse_model(body.judge_model)  # a malformed name is a 400 now; an unroutable one, when judging
        return await self._db.run(
            repo.create_version,
            principal.project.id,
            name,
            instructions=body.instructions,
            judge_model=body.judge_model,
            description=body.description,
            variables=variables,
        )

    async def all(self, principal: Principal) -> list[Criterion]:
        return await self._db.run(repo.list_latest, principal.project.id)

    async def get(self, principal: Principal, criterion_id: str) -> Criterion:
        return await self._db.run(criterion_in, principal, criterion_id)

    async def versions(self, principal: Principal, name: str) -> list[Criterion]:
        found = await self._db.run(repo.list_versions, principal.project.id, parse_criterion_id(name).name)
        if not found:
            raise not_found(name)
        return found

    async def delete(self, principal: Principal, criterion_id: str) -> int:
        """Delete ``name@vN``, or every version of ``name`` and its alignment set."""
        ref = parse_criterion_id(criterion_id)

        def delete(conn: Connection) -> int:
            criterion_in(conn, principal, criterion_id)
            return repo.delete_criterion(conn, principal.project.id, ref.name, ref.version)

        return await self._db.run(delete)

    async def judge(self, principal: Principal, body: JudgeRequest) -> Judged:
        """One verdict; a judge that fails is the request's error (its status, or 502)."""
        criterion = await self.get(principal, body.criterion_id)
        sample = Sample(
            messages=body.input.messages,
            output=body.output,
            tools=body.input.tools,
            tool_choice=body.input.tool_choice,
        )
        judged = await self._judge.criterion(principal, criterion, sample, log=JudgeLog(None, {}))
        result = judged.result
        if result.status != "success":
            raise for_status(result.error_code or 502, result.error_message or "The judge failed")
        return judged
