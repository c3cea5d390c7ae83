"""OpenPipe's dataset endpoints (``/datasets``, ``/datasets/{id}/entries``, the deprecated
``/unstable/dataset*``) and tunepipe's additions: dataset settings, entry listing and editing,
JSONL upload and export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import JSONL, answers, download
from tunepipe.domain.datasets import EntryFilter
from tunepipe.errors import InvalidRequest
from tunepipe.protocol.answers_data import (
    Dataset,
    DatasetEntry,
    DatasetEntryPage,
    DatasetList,
    DatasetUpload,
    Deleted,
    EntriesCreated,
    UnstableDatasetId,
    UnstableDatasetList,
    UnstableEntriesCreated,
)
from tunepipe.protocol.datasets import (
    CreateDatasetRequest,
    CreateEntriesRequest,
    UnstableCreateDatasetRequest,
    UnstableCreateEntriesRequest,
    UnstableDeleteDatasetRequest,
    UpdateDatasetRequest,
    UpdateEntryRequest,
    check_metadata_types,
    dataset_view,
    entries_created_view,
    entry_view,
    unstable_dataset_view,
)
from tunepipe.protocol.types import Id, Text

router = APIRouter(tags=["datasets"])


@router.get("/datasets", responses=answers(DatasetList))
async def list_datasets(state: State, caller: Caller) -> Response:
    datasets = await state.datasets.all(caller)
    return json_response({"object": "list", "data": [dataset_view(d) for d in datasets]})


@router.post("/datasets", responses=answers(Dataset))
async def create_dataset(body: CreateDatasetRequest, state: State, caller: Writer) -> Response:
    return json_response(dataset_view(await state.datasets.create(caller, body.name, body.train_ratio)))


@router.get("/datasets/{dataset_id}", responses=answers(Dataset))
async def get_dataset(dataset_id: Id, state: State, caller: Caller) -> Response:
    return json_response(dataset_view(await state.datasets.get(caller, dataset_id)))


@router.patch("/datasets/{dataset_id}", responses=answers(Dataset))
async def update_dataset(
    dataset_id: Id, body: UpdateDatasetRequest, state: State, caller: Writer
) -> Response:
    ds = await state.datasets.update(caller, dataset_id, name=body.name, train_ratio=body.train_ratio)
    return json_response(dataset_view(ds))


@router.delete("/datasets/{dataset_id}", responses=answers(Deleted))
async def delete_dataset(dataset_id: Id, state: State, caller: Writer) -> Response:
    await state.datasets.delete(caller, dataset_id)
    return json_response({"id": dataset_id, "object": "dataset", "deleted": True})


@router.post("/datasets/{dataset_id}/entries", responses=answers(EntriesCreated))
async def create_entries(
    dataset_id: Id, body: CreateEntriesRequest, state: State, caller: Writer
) -> Response:
    check_metadata_types(body.entries)
    created, errors = await state.datasets.add_entries(caller, dataset_id, body.entries)
    return json_response(entries_created_view(created, errors))


@router.get("/datasets/{dataset_id}/entries", responses=answers(DatasetEntryPage))
async def list_entries(
    dataset_id: Id,
    state: State,
    caller: Caller,
    split: str | None = None,
    provenance: str | None = None,
    contains: Text | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    f = EntryFilter(split=split or None, provenance=provenance or None, contains=contains or None)
    entries, next_cursor = await state.datasets.page(caller, dataset_id, f, cursor, limit)
    return json_response(
        {
            "object": "list",
            "data": [entry_view(e) for e in entries],
            "has_more": next_cursor is not None,
            "next_cursor": next_cursor,
        }
    )


@router.get(
    "/datasets/{dataset_id}/export",
    response_class=StreamingResponse,
    responses=download("application/x-ndjson", "The dataset as JSON lines, one entry a line", JSONL),
)
async def export_dataset(
    dataset_id: Id, state: State, caller: Caller, include_split: bool = True
) -> Response:
    """Stream the dataset as JSONL (spec D), re-importable as is."""
    ds = await state.datasets.get(caller, dataset_id)
    lines = state.datasets.export_lines(caller, ds.id, include_split=include_split)
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="dataset.jsonl"'},
    )


@router.post("/datasets/{dataset_id}/upload", responses=answers(DatasetUpload))
async def upload_dataset(
    dataset_id: Id, state: State, caller: Writer, file: Annotated[UploadFile, File()]
) -> Response:
    """A JSONL file (multipart field ``file``), all or nothing: 400 with line numbers on any error."""
    result = await state.datasets.upload(caller, dataset_id, file.file)
    body = {
        "object": "dataset.upload",
        "entries_created": result.entries_created,
        "lines": result.lines,
        "error_count": result.error_count,
        "errors": [{"line": line, "message": message} for line, message in result.errors],
    }
    if not result.error_count:
        return json_response(body)
    first_line, first_message = result.errors[0]
    problem = InvalidRequest(
        f"{result.error_count} invalid line(s), nothing imported; line {first_line}: {first_message}",
        param="file",
    )
    return json_response({**problem.envelope(), **body}, status_code=problem.status_code)


@router.get("/datasets/{dataset_id}/entries/{entry_id}", responses=answers(DatasetEntry))
async def get_entry(dataset_id: Id, entry_id: Id, state: State, caller: Caller) -> Response:
    return json_response(entry_view(await state.datasets.get_entry(caller, dataset_id, entry_id)))


@router.patch("/datasets/{dataset_id}/entries/{entry_id}", responses=answers(DatasetEntry))
async def update_entry(
    dataset_id: Id, entry_id: Id, body: UpdateEntryRequest, state: State, caller: Writer
) -> Response:
    return json_response(entry_view(await state.datasets.update_entry(caller, dataset_id, entry_id, body)))


@router.delete("/datasets/{dataset_id}/entries/{entry_id}", responses=answers(Deleted))
async def delete_entry(dataset_id: Id, entry_id: Id, state: State, caller: Writer) -> Response:
    await state.datasets.delete_entry(caller, dataset_id, entry_id)
    return json_response({"id": entry_id, "object": "dataset.entry", "deleted": True})


# Deprecated OpenPipe routes, kept for older SDKs.


@router.post("/unstable/dataset/create", responses=answers(UnstableDatasetId))
async def unstable_create(body: UnstableCreateDatasetRequest, state: State, caller: Writer) -> Response:
    ds = await state.datasets.create(caller, body.name)
    return json_response({"datasetId": ds.id})


@router.post("/unstable/dataset/delete", responses=answers(UnstableDatasetId, errors=[404]))
async def unstable_delete(body: UnstableDeleteDatasetRequest, state: State, caller: Writer) -> Response:
    await state.datasets.delete(caller, body.dataset_id)
    return json_response({"datasetId": body.dataset_id})


@router.get("/unstable/dataset/list", responses=answers(UnstableDatasetList))
async def unstable_list(state: State, caller: Caller) -> Response:
    return json_response([unstable_dataset_view(d) for d in await state.datasets.all(caller)])


@router.post("/unstable/dataset-entry/create", responses=answers(UnstableEntriesCreated, errors=[404]))
async def unstable_create_entries(
    body: UnstableCreateEntriesRequest, state: State, caller: Writer
) -> Response:
    check_metadata_types(body.entries)
    created, errors = await state.datasets.add_entries(caller, body.dataset_id, body.entries)
    return json_response(
        {"createdEntries": created, "errors": [{"index": i, "message": m} for i, m in errors]}
    )
