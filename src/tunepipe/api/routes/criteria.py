"""Criteria: OpenPipe's ``POST /criteria/judge``, and tunepipe's criteria CRUD and alignment sets.

A criterion id in a path is ``name`` (the latest version) or ``name@vN``. Alignment rows belong
to the name; statistics belong to a version.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.errors import InvalidRequest
from tunepipe.protocol.answers_data import (
    AlignmentComparison,
    AlignmentReport,
    AlignmentRowList,
    CriterionAnswer,
    CriterionDeleted,
    CriterionList,
    JobAnswer,
    Judged,
    RowDeleted,
    RowLabelled,
    RowsAdded,
    RowsUploaded,
)
from tunepipe.protocol.criteria import (
    AddRowsRequest,
    CreateCriterionRequest,
    JudgeRequest,
    LabelRowRequest,
    RunAlignmentRequest,
    SampleRowsRequest,
    criterion_view,
    row_view,
    stats_view,
)
from tunepipe.protocol.jobs import job_view
from tunepipe.protocol.types import Id

router = APIRouter(tags=["criteria"])


@router.post("/criteria/judge", responses=answers(Judged, errors=[404, 502]))
async def judge(body: JudgeRequest, state: State, caller: Caller) -> Response:
    judged = await state.criteria.judge(caller, body)
    out = {"score": judged.result.score, "explanation": judged.result.explanation, "cost_usd": judged.cost}
    return json_response(out)


@router.post("/criteria", status_code=201, responses=answers(CriterionAnswer, 201, errors=[409]))
async def create_criterion(body: CreateCriterionRequest, state: State, caller: Writer) -> Response:
    return json_response(criterion_view(await state.criteria.create(caller, body)), 201)


@router.get("/criteria", responses=answers(CriterionList))
async def list_criteria(state: State, caller: Caller) -> Response:
    found = await state.criteria.all(caller)
    return json_response({"object": "list", "data": [criterion_view(c) for c in found]})


@router.get("/criteria/{criterion_id}", responses=answers(CriterionAnswer))
async def get_criterion(criterion_id: Id, state: State, caller: Caller) -> Response:
    return json_response(criterion_view(await state.criteria.get(caller, criterion_id)))


@router.get("/criteria/{name}/versions", responses=answers(CriterionList))
async def list_versions(name: Id, state: State, caller: Caller) -> Response:
    found = await state.criteria.versions(caller, name)
    return json_response({"object": "list", "data": [criterion_view(c) for c in found]})


@router.delete("/criteria/{criterion_id}", responses=answers(CriterionDeleted))
async def delete_criterion(criterion_id: Id, state: State, caller: Writer) -> Response:
    removed = await state.criteria.delete(caller, criterion_id)
    return json_response(
        {"id": criterion_id, "object": "criterion", "deleted": True, "versions_deleted": removed}
    )


# Alignment sets


@router.get("/criteria/{criterion_id}/alignment", responses=answers(AlignmentRowList))
async def list_alignment_rows(criterion_id: Id, state: State, caller: Caller) -> Response:
    """The set's rows, each with what this version's judge said (once it has judged it)."""
    criterion, rows = await state.alignment.rows(caller, criterion_id)
    return json_response(
        {"object": "list", "criterion": criterion.ref, "data": [row_view(r, j) for r, j in rows]}
    )


@router.post("/criteria/{name}/alignment", status_code=201, responses=answers(RowsAdded, 201))
async def add_alignment_rows(name: Id, body: AddRowsRequest, state: State, caller: Writer) -> Response:
    return json_response({"rows_added": await state.alignment.add(caller, name, body.rows)}, 201)


@router.post("/criteria/{name}/alignment/upload", status_code=201, responses=answers(RowsUploaded, 201))
async def upload_alignment_rows(
    name: Id, state: State, caller: Writer, file: Annotated[UploadFile, File()]
) -> Response:
    """A JSONL file (multipart field ``file``, at most 10 MB), all or nothing."""
    added, errors = await state.alignment.upload(caller, name, file.file)
    body = {"rows_added": added, "errors": [{"line": line, "message": msg} for line, msg in errors]}
    if not errors:
        return json_response(body, 201)
    line, message = errors[0]
    problem = InvalidRequest(
        f"{len(errors)} invalid line(s), nothing added; line {line}: {message}", param="file"
    )
    return json_response({**problem.envelope(), **body}, status_code=problem.status_code)


@router.post("/criteria/{name}/alignment/sample", status_code=201, responses=answers(RowsAdded, 201))
async def sample_alignment_rows(name: Id, body: SampleRowsRequest, state: State, caller: Writer) -> Response:
    return json_response({"rows_added": await state.alignment.sample(caller, name, body)}, 201)


@router.patch("/criteria/{name}/alignment/{row_id}", responses=answers(RowLabelled))
async def label_alignment_row(
    name: Id, row_id: Id, body: LabelRowRequest, state: State, caller: Writer
) -> Response:
    await state.alignment.label(caller, name, row_id, body.judgement)
    return json_response({"id": row_id, "judgement": body.judgement})


@router.delete("/criteria/{name}/alignment/{row_id}", responses=answers(RowDeleted))
async def delete_alignment_row(name: Id, row_id: Id, state: State, caller: Writer) -> Response:
    await state.alignment.delete_row(caller, name, row_id)
    return json_response({"id": row_id, "deleted": True})


@router.post("/criteria/{criterion_id}/alignment/run", status_code=202, responses=answers(JobAnswer, 202))
async def run_alignment(
    criterion_id: Id, state: State, caller: Writer, body: RunAlignmentRequest | None = None
) -> Response:
    """Judge the set with this version (a job); follow it at ``/jobs/{id}``."""
    job = await state.alignment.start(caller, criterion_id, rerun=bool(body and body.rerun))
    return json_response(job_view(job), 202)


@router.get("/criteria/{criterion_id}/alignment/stats", responses=answers(AlignmentReport))
async def alignment_stats(criterion_id: Id, state: State, caller: Caller) -> Response:
    """Agreement between this version's judge and the humans, and the rows they disagree on."""
    criterion, stats, cost, disagreements = await state.alignment.stats(caller, criterion_id)
    return json_response(
        {**stats_view(criterion, stats, cost), "disagreements": [row_view(r, j) for r, j in disagreements]}
    )


@router.get("/criteria/{name}/alignment/compare", responses=answers(AlignmentComparison))
async def compare_versions(name: Id, state: State, caller: Caller) -> Response:
    """Every version's agreement with the humans, side by side."""
    found = await state.alignment.compare(caller, name)
    return json_response({"object": "list", "data": [stats_view(c, s, cost) for c, s, cost in found]})
