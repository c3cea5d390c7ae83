"""Evaluations over a dataset's TEST entries (head-to-head, criteria, code graders), run as
background jobs; results are live while they run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.domain.evals import eval_status
from tunepipe.protocol.evals import AddModelsRequest, CreateEvalRequest, eval_view
from tunepipe.protocol.types import Id
from tunepipe.services.evals.service import EvalRow, EvalState

router = APIRouter(tags=["evals"])


def _state_view(s: EvalState) -> dict[str, Any]:
    progress = dict(s.job.progress) if s.job else {}
    if s.job is not None and s.job.error_message:
        progress["error_message"] = s.job.error_message
    return eval_view(s.eval, s.status, progress, s.results, s.entries)


def _row_view(row: EvalRow) -> dict[str, Any]:
    data = row.entry.data
    return {
        "entry_id": row.entry.id,
        "input": {"messages": data.messages, "tools": data.tools, "tool_choice": data.tool_choice},
        "dataset_output": data.output,
        "outputs": {m: o.output for m, o in row.outputs.items()},
        "judgements": [
            {
                "model": j.model,
                "opponent": j.opponent or None,
                "criterion": j.criterion or None,
                "status": j.status,
                "score": j.score,
                "explanation": j.explanation,
                "error_message": j.error_message,
                "cost_usd": j.cost,
                **({"details": j.details} if j.details else {}),
            }
            for j in row.judgements
        ],
    }


@router.post("/evals")
async def create_eval(body: CreateEvalRequest, state: State, caller: Writer) -> Response:
    ev, job = await state.evals.create(caller, body)
    return json_response(
        {"id": ev.id, "object": "eval", "status": eval_status(job.status), "job_id": job.id}, 201
    )


@router.get("/evals")
async def list_evals(state: State, caller: Caller, dataset_id: Id | None = None) -> Response:
    found = await state.evals.all(caller, dataset_id)
    data = [
        eval_view(ev, eval_status(job.status if job else None), dict(job.progress) if job else {}, None, 0)
        for ev, job in found
    ]
    return json_response({"object": "list", "data": data})


@router.get("/evals/{eval_id}")
async def get_eval(eval_id: Id, state: State, caller: Caller) -> Response:
    return json_response(_state_view(await state.evals.get(caller, eval_id)))


@router.get("/evals/{eval_id}/rows")
async def eval_rows(
    eval_id: Id,
    state: State,
    caller: Caller,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    rows, total = await state.evals.rows(caller, eval_id, offset=offset, limit=limit)
    return json_response(
        {"object": "list", "data": [_row_view(r) for r in rows], "total": total, "offset": offset}
    )


@router.post("/evals/{eval_id}/models")
async def add_models(eval_id: Id, body: AddModelsRequest, state: State, caller: Writer) -> Response:
    """Add models to the eval; only their outputs and judgements are made."""
    ev, job = await state.evals.add_models(caller, eval_id, body.models)
    return json_response(
        {"id": ev.id, "models": list(ev.models), "status": eval_status(job.status), "job_id": job.id}, 202
    )


@router.delete("/evals/{eval_id}")
async def delete_eval(eval_id: Id, state: State, caller: Writer) -> Response:
    await state.evals.delete(caller, eval_id)
    return json_response({"id": eval_id, "object": "eval", "deleted": True})
