"""Dataset jobs (tunepipe's own): import from request logs, relabel with a model, and their
progress. Starting a job answers 202 with the job; poll ``GET .../jobs/{jobId}``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.protocol.dataset_jobs import ImportLogsRequest, RelabelRequest
from tunepipe.services.dataset_jobs import job_view

router = APIRouter(tags=["datasets"])


@router.post("/datasets/{dataset_id}/import-logs")
async def import_logs(dataset_id: str, body: ImportLogsRequest, state: State, caller: Writer) -> Response:
    return json_response(job_view(await state.dataset_jobs.import_logs(caller, dataset_id, body)), 202)


@router.post("/datasets/{dataset_id}/relabel")
async def relabel(dataset_id: str, body: RelabelRequest, state: State, caller: Writer) -> Response:
    return json_response(job_view(await state.dataset_jobs.relabel(caller, dataset_id, body)), 202)


@router.get("/datasets/{dataset_id}/jobs")
async def list_jobs(dataset_id: str, state: State, caller: Caller) -> Response:
    jobs = await state.dataset_jobs.list_jobs(caller, dataset_id)
    return json_response({"object": "list", "data": [job_view(j) for j in jobs]})


@router.get("/datasets/{dataset_id}/jobs/{job_id}")
async def get_job(dataset_id: str, job_id: str, state: State, caller: Caller) -> Response:
    return json_response(job_view(await state.dataset_jobs.get_job(caller, dataset_id, job_id)))
