"""The Models API (spec A.4): list what the project can call, train a model (``POST /models``),
get and delete one; tunepipe's additions (cancel, test-set outputs, adapter and merged-weights
downloads); and the deprecated ``/unstable/finetune/*`` routes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import FileResponse, Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.domain.fine_tunes import FineTune
from tunepipe.protocol.models import (
    CreateModelRequest,
    UnstableFinetuneCreateRequest,
    UnstableFinetuneDeleteRequest,
    catalog_view,
    model_view,
    test_outputs_view,
    unstable_request,
    unstable_view,
)
from tunepipe.protocol.types import Id
from tunepipe.services.container import Container

router = APIRouter(tags=["models"])

Dtype = Literal["fp32", "bf16", "fp16"]


async def _view(state: Container, owner: str, ft: FineTune) -> Response:
    d = await state.fine_tunes.detail(ft)
    return json_response(model_view(ft, progress=d.progress, owner=owner, context=d.context))


@router.get("/models")
async def list_models(state: State, caller: Caller) -> Response:
    items = await state.catalog.models(caller)
    return json_response({"object": "list", "data": [catalog_view(m) for m in items]})


@router.post("/models")
async def create_model(body: CreateModelRequest, state: State, caller: Writer) -> Response:
    return await _view(state, caller.project.name, await state.fine_tunes.create(caller, body))


@router.get("/models/{slug}")
async def get_model(slug: Id, state: State, caller: Caller) -> Response:
    return await _view(state, caller.project.name, await state.fine_tunes.get(caller, slug))


@router.delete("/models/{slug}")
async def delete_model(slug: Id, state: State, caller: Writer) -> Response:
    ft = await state.fine_tunes.delete(caller, slug)
    return json_response({"id": ft.slug, "object": "model", "deleted": True})


@router.post("/models/{slug}/cancel")
async def cancel_model(slug: Id, state: State, caller: Writer) -> Response:
    return await _view(state, caller.project.name, await state.fine_tunes.cancel(caller, slug))


@router.get("/models/{slug}/test-outputs")
async def model_test_outputs(slug: Id, state: State, caller: Caller) -> Response:
    ft, outputs = await state.fine_tunes.test_outputs(caller, slug)
    return json_response(test_outputs_view(ft, outputs))


@router.get("/models/{slug}/adapter")
async def download_adapter(slug: Id, state: State, caller: Caller) -> Response:
    ft, data = await state.fine_tunes.adapter_archive(caller, slug)
    return Response(
        data,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{ft.slug}-adapter.tar.gz"'},
    )


@router.get("/models/{slug}/weights")
async def download_weights(
    slug: Id, state: State, caller: Caller, dtype: Annotated[Dtype, Query()] = "bf16"
) -> Response:
    archive = await state.fine_tunes.merged_archive(caller, slug, dtype)
    return FileResponse(
        archive, media_type="application/gzip", filename=f"{slug.removeprefix('openpipe:')}-{dtype}.tar.gz"
    )


# Deprecated (OpenPipe's older SDKs)


@router.post("/unstable/finetune/create")
async def unstable_finetune_create(
    body: UnstableFinetuneCreateRequest, state: State, caller: Writer
) -> Response:
    ft = await state.fine_tunes.create(caller, unstable_request(body))
    return json_response({"id": ft.id})


@router.get("/unstable/finetune/get")
async def unstable_finetune_get(
    state: State, caller: Caller, id: Id | None = None, slug: Id | None = None
) -> Response:
    return json_response(unstable_view(await state.fine_tunes.find(caller, id=id, slug=slug)))


@router.post("/unstable/finetune/delete")
async def unstable_finetune_delete(
    body: UnstableFinetuneDeleteRequest, state: State, caller: Writer
) -> Response:
    ft = await state.fine_tunes.find(caller, id=body.id, slug=body.slug)
    await state.fine_tunes.delete(caller, ft.slug)
    return json_response({"deleted": True})
