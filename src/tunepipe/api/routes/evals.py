"""Evaluations over a dataset's TEST entries (head-to-head, criteria, code graders), run as
background jobs; results are live while they run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.domain.evals import eval_status
from tunepipe.protocol.answers_data import (
    Deleted,
    EvalAnswer,
    EvalList,
    EvalModelsAdded,
    EvalRowPage,
    EvalStarted,
)
from tunepipe.protocol.evals import (
    AddModelsRequest,
    CreateEvalRequest,
    eval_list_view,
    eval_row_view,
    eval_state_view,
)
from tunepipe.protocol.types import Id
from tunepipe.services.evals.service import EvalRow, EvalState

router = APIRouter(tags=["evals"])


def _state_view(s: EvalState) -> dict[str, Any]:
    return eval_state_view(s.eval, s.job, s.entries, s.results)


def _row_view(row: EvalRow) -> dict[str, Any]:
    return eval_row_view(row.entry, {m: o.output for m, o in row.outputs.items()}, row.judgements)


@router.post("/evals", status_code=201, responses=answers(EvalStarted, 201, errors=[404]))
async def create_eval(body: CreateEvalRequest, state: State, caller: Writer) -> Response:
    ev, job = await state.evals.create(caller, body)
    return json_response(
        {"id": ev.id, "object": "eval", "status": eval_status(job.status), "job_id": job.id}, 201
    )


# 404: a `dataset_id` with a NUL character names nothing (`Id`).
@router.get("/evals", responses=answers(EvalList, errors=[404]))
async def list_evals(state: State, caller: Caller, dataset_id: Id | None = None) -> Response:
    found = await state.evals.all(caller, dataset_id)
    return json_response({"object": "list", "data": [eval_list_view(ev, job) for ev, job in found]})


@router.get("/evals/{eval_id}", responses=answers(EvalAnswer))
async def get_eval(eval_id: Id, state: State, caller: Caller) -> Response:
    return json_response(_state_view(await state.evals.get(caller, eval_id)))


@router.get("/evals/{eval_id}/rows", responses=answers(EvalRowPage))
async def eval_rows(
    eval_id: Id,
    state: State,
    caller: Caller,
    # Bounded: an offset past 64 bits reached the database as a 500.
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    rows, total = await state.evals.rows(caller, eval_id, offset=offset, limit=limit)
    return json_response(
        {"object": "list", "data": [_row_view(r) for r in rows], "total": total, "offset": offset}
    )


@router.post("/evals/{eval_id}/models", status_code=202, responses=answers(EvalModelsAdded, 202))
async def add_models(eval_id: Id, body: AddModelsRequest, state: State, caller: Writer) -> Response:
    """Add models to the eval; only their outputs and judgements are made."""
    ev, job = await state.evals.add_models(caller, eval_id, body.models)
    return json_response(
        {"id": ev.id, "models": list(ev.models), "status": eval_status(job.status), "job_id": job.id}, 202
    )


@router.delete("/evals/{eval_id}", responses=answers(Deleted))
async def delete_eval(eval_id: Id, state: State, caller: Writer) -> Response:
    await state.evals.delete(caller, eval_id)
    return json_response({"id": eval_id, "object": "eval", "deleted": True})
