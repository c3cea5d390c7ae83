"""Pruning rules of a dataset (``/datasets/{datasetId}/pruning-rules``), spec B.11. Reads take
any key of the project, changes a read/write key."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.protocol.answers_data import Deleted, PruningReportAnswer, PruningRuleAnswer, PruningRuleList
from tunepipe.protocol.pruning import PruningRuleBody, report_view, rule_view
from tunepipe.protocol.types import Id

router = APIRouter(tags=["pruning rules"])


@router.get("/datasets/{dataset_id}/pruning-rules", responses=answers(PruningRuleList))
async def list_pruning_rules(dataset_id: Id, state: State, caller: Caller) -> Response:
    rules = await state.pruning.rules(caller.project.id, dataset_id)
    count = state.pruning.count_tokens
    return json_response({"object": "list", "data": [rule_view(r, count) for r in rules]})


@router.post(
    "/datasets/{dataset_id}/pruning-rules", status_code=201, responses=answers(PruningRuleAnswer, 201)
)
async def add_pruning_rule(dataset_id: Id, body: PruningRuleBody, state: State, caller: Writer) -> Response:
    rule = await state.pruning.add(caller.project.id, dataset_id, body.text_to_match)
    return json_response(rule_view(rule, state.pruning.count_tokens), status_code=201)


@router.get("/datasets/{dataset_id}/pruning-rules/report", responses=answers(PruningReportAnswer))
async def pruning_report(dataset_id: Id, state: State, caller: Caller) -> Response:
    report = await state.pruning.report(caller.project.id, dataset_id)
    return json_response(report_view(report, state.pruning.count_tokens))


@router.patch("/datasets/{dataset_id}/pruning-rules/{rule_id}", responses=answers(PruningRuleAnswer))
async def update_pruning_rule(
    dataset_id: Id, rule_id: Id, body: PruningRuleBody, state: State, caller: Writer
) -> Response:
    rule = await state.pruning.update(caller.project.id, dataset_id, rule_id, body.text_to_match)
    return json_response(rule_view(rule, state.pruning.count_tokens))


@router.delete("/datasets/{dataset_id}/pruning-rules/{rule_id}", responses=answers(Deleted))
async def delete_pruning_rule(dataset_id: Id, rule_id: Id, state: State, caller: Writer) -> Response:
    await state.pruning.remove(caller.project.id, dataset_id, rule_id)
    return json_response({"id": rule_id, "object": "pruning_rule", "deleted": True})
