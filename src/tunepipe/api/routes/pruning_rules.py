"""Pruning rules of a dataset (``/datasets/{datasetId}/pruning-rules``), spec B.11.

OpenPipe only had these in its UI; the shapes follow its ``PruningRule`` (``textToMatch``,
``tokensInText``). Reads take any key of the project, changes a read/write key.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response

router = APIRouter(tags=["pruning rules"])


class PruningRuleBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    text_to_match: str = Field(alias="textToMatch")


@router.get("/datasets/{dataset_id}/pruning-rules")
async def list_pruning_rules(dataset_id: str, state: State, caller: Caller) -> Response:
    rules = await state.pruning.list_rules(caller.project.id, dataset_id)
    return json_response({"object": "list", "data": [state.pruning.view(r) for r in rules]})


@router.post("/datasets/{dataset_id}/pruning-rules")
async def add_pruning_rule(dataset_id: str, body: PruningRuleBody, state: State, caller: Writer) -> Response:
    rule = await state.pruning.add(caller.project.id, dataset_id, body.text_to_match)
    return json_response(state.pruning.view(rule), status_code=201)


@router.get("/datasets/{dataset_id}/pruning-rules/report")
async def pruning_report(dataset_id: str, state: State, caller: Caller) -> Response:
    return json_response(await state.pruning.report(caller.project.id, dataset_id))


@router.patch("/datasets/{dataset_id}/pruning-rules/{rule_id}")
async def update_pruning_rule(
    dataset_id: str, rule_id: str, body: PruningRuleBody, state: State, caller: Writer
) -> Response:
    rule = await state.pruning.update(caller.project.id, dataset_id, rule_id, body.text_to_match)
    return json_response(state.pruning.view(rule))


@router.delete("/datasets/{dataset_id}/pruning-rules/{rule_id}")
async def delete_pruning_rule(dataset_id: str, rule_id: str, state: State, caller: Writer) -> Response:
    await state.pruning.remove(caller.project.id, dataset_id, rule_id)
    return json_response({"id": rule_id, "object": "pruning_rule", "deleted": True})
