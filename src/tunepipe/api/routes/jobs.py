"""Background jobs: every job of the project (``/jobs``: training, imports, relabels), and the
dataset routes that start and follow imports from request logs and relabeling (tunepipe's own;
OpenPipe had these in its UI). Starting a job answers 202 with it; a worker runs it. A job is
cancelled with ``POST .../cancel`` or ``DELETE`` (a queued one at once, a running one by its
worker); its record is kept."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.domain.jobs import JobKind
from tunepipe.protocol.answers_data import DatasetJob, DatasetJobList, JobAnswer, JobList
from tunepipe.protocol.datasets import ImportLogsRequest, RelabelRequest
from tunepipe.protocol.jobs import dataset_job_view, job_view
from tunepipe.protocol.types import Id, Text

router = APIRouter(tags=["jobs"])

DATASET_KINDS = (JobKind.IMPORT_LOGS.value, JobKind.RELABEL.value)


# 404: a `subject_id` with a NUL character names nothing (`Id`).
@router.get("/jobs", responses=answers(JobList, errors=[404]))
async def list_jobs(
    state: State,
    caller: Caller,
    kind: Annotated[list[Text] | None, Query()] = None,
    status: Text | None = None,
    subject_id: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    jobs = await state.jobs.list_jobs(
        caller, kinds=kind or (), subject_id=subject_id, status=status, limit=limit
    )
    return json_response({"object": "list", "data": [job_view(j) for j in jobs]})


@router.get("/jobs/{job_id}", responses=answers(JobAnswer))
async def get_job(job_id: Id, state: State, caller: Caller) -> Response:
    return json_response(job_view(await state.jobs.get(caller, job_id)))


@router.post("/jobs/{job_id}/cancel", responses=answers(JobAnswer))
async def cancel_job(job_id: Id, state: State, caller: Writer) -> Response:
    return json_response(job_view(await state.jobs.cancel(caller, job_id)))


@router.delete("/jobs/{job_id}", responses=answers(JobAnswer))
async def delete_job(job_id: Id, state: State, caller: Writer) -> Response:
    return json_response(job_view(await state.jobs.cancel(caller, job_id)))


# Dataset jobs


@router.post("/datasets/{dataset_id}/import-logs", status_code=202, responses=answers(DatasetJob, 202))
async def import_logs(dataset_id: Id, body: ImportLogsRequest, state: State, caller: Writer) -> Response:
    return json_response(dataset_job_view(await state.imports.start(caller, dataset_id, body)), 202)


@router.post("/datasets/{dataset_id}/relabel", status_code=202, responses=answers(DatasetJob, 202))
async def relabel(dataset_id: Id, body: RelabelRequest, state: State, caller: Writer) -> Response:
    return json_response(dataset_job_view(await state.relabeling.start(caller, dataset_id, body)), 202)


@router.get("/datasets/{dataset_id}/jobs", responses=answers(DatasetJobList))
async def list_dataset_jobs(dataset_id: Id, state: State, caller: Caller) -> Response:
    await state.datasets.get(caller, dataset_id)
    jobs = await state.jobs.list_jobs(caller, kinds=DATASET_KINDS, subject_id=dataset_id)
    return json_response({"object": "list", "data": [dataset_job_view(j) for j in jobs]})


@router.get("/datasets/{dataset_id}/jobs/{job_id}", responses=answers(DatasetJob))
async def get_dataset_job(dataset_id: Id, job_id: Id, state: State, caller: Caller) -> Response:
    return json_response(dataset_job_view(await state.jobs.get(caller, job_id, subject_id=dataset_id)))


@router.post("/datasets/{dataset_id}/jobs/{job_id}/cancel", responses=answers(DatasetJob))
async def cancel_dataset_job(dataset_id: Id, job_id: Id, state: State, caller: Writer) -> Response:
    return json_response(dataset_job_view(await state.jobs.cancel(caller, job_id, subject_id=dataset_id)))


@router.delete("/datasets/{dataset_id}/jobs/{job_id}", responses=answers(DatasetJob))
async def delete_dataset_job(dataset_id: Id, job_id: Id, state: State, caller: Writer) -> Response:
    return json_response(dataset_job_view(await state.jobs.cancel(caller, job_id, subject_id=dataset_id)))
