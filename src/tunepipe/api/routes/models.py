"""The Models API (spec A.4): list what the project can call, train a model (``POST /models``),
get and delete one; tunepipe's additions (cancel, test-set outputs, adapter and merged-weights
downloads); and the deprecated ``/unstable/finetune/*`` routes.

``GET /models/{id}`` takes every listed id, also those with ``/`` in them
(``openpipe:<provider>/<model>``, ``local:<org>/<name>``), so its path parameter is an
``anypath`` (:mod:`tunepipe.api.routes.paths`) and the route comes after the fine-tune
sub-resources (``…/adapter``, ``…/weights``, ``…/test-outputs``). A listed model whose id
happens to end in one of those names is still found: a sub-resource route that finds no
fine-tune looks the whole path up in the catalog.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import FileResponse, Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers, download
from tunepipe.api.routes import paths  # noqa: F401  (registers `{name:anypath}`)
from tunepipe.domain.fine_tunes import FineTune
from tunepipe.domain.projects import Principal
from tunepipe.errors import NotFound
from tunepipe.protocol.answers_admin import (
    DeletedFlag,
    ModelAnswer,
    ModelList,
    TestOutputList,
    UnstableFinetune,
    UnstableFinetuneId,
)
from tunepipe.protocol.answers_data import Deleted
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


@router.get("/models", responses=answers(ModelList))
async def list_models(state: State, caller: Caller) -> Response:
    items = await state.catalog.models(caller)
    return json_response({"object": "list", "data": [catalog_view(m) for m in items]})


@router.post("/models", responses=answers(ModelAnswer, errors=[404, 409]))
async def create_model(body: CreateModelRequest, state: State, caller: Writer) -> Response:
    return await _view(state, caller.project.name, await state.fine_tunes.create(caller, body))


@router.delete("/models/{slug}", responses=answers(Deleted))
async def delete_model(slug: Id, state: State, caller: Writer) -> Response:
    ft = await state.fine_tunes.delete(caller, slug)
    return json_response({"id": ft.slug, "object": "model", "deleted": True})


@router.post("/models/{slug}/cancel", responses=answers(ModelAnswer))
async def cancel_model(slug: Id, state: State, caller: Writer) -> Response:
    return await _view(state, caller.project.name, await state.fine_tunes.cancel(caller, slug))


async def _listed(state: Container, caller: Principal, model_id: str, missing: NotFound) -> Response:
    """The catalog's model ``model_id`` when a sub-resource route took its path; else ``missing``."""
    try:
        return json_response(catalog_view(await state.catalog.find(caller, model_id)))
    except NotFound:
        raise missing from None


@router.get("/models/{slug}/test-outputs", responses=answers(TestOutputList))
async def model_test_outputs(slug: Id, state: State, caller: Caller) -> Response:
    try:
        ft, outputs = await state.fine_tunes.test_outputs(caller, slug)
    except NotFound as exc:
        return await _listed(state, caller, f"{slug}/test-outputs", exc)
    return json_response(test_outputs_view(ft, outputs))


@router.get(
    "/models/{slug}/adapter",
    response_class=Response,
    responses=download("application/gzip", "The LoRA adapter, a .tar.gz"),
)
async def download_adapter(slug: Id, state: State, caller: Caller) -> Response:
    try:
        ft, data = await state.fine_tunes.adapter_archive(caller, slug)
    except NotFound as exc:
        return await _listed(state, caller, f"{slug}/adapter", exc)
    return Response(
        data,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{ft.slug}-adapter.tar.gz"'},
    )


@router.get(
    "/models/{slug}/weights",
    response_class=Response,
    responses=download("application/gzip", "The merged weights, a .tar.gz"),
)
async def download_weights(
    slug: Id, state: State, caller: Caller, dtype: Annotated[Dtype, Query()] = "bf16"
) -> Response:
    try:
        archive = await state.fine_tunes.merged_archive(caller, slug, dtype)
    except NotFound as exc:
        return await _listed(state, caller, f"{slug}/weights", exc)
    return FileResponse(
        archive, media_type="application/gzip", filename=f"{slug.removeprefix('openpipe:')}-{dtype}.tar.gz"
    )


# After every `/models/{slug}/…` GET route: an `anypath` parameter would take their paths too.
@router.get("/models/{model_id:anypath}", responses=answers(ModelAnswer))
async def get_model(model_id: Id, state: State, caller: Caller) -> Response:
    return json_response(catalog_view(await state.catalog.find(caller, model_id)))


# Deprecated (OpenPipe's older SDKs)


@router.post("/unstable/finetune/create", responses=answers(UnstableFinetuneId, errors=[404, 409]))
async def unstable_finetune_create(
    body: UnstableFinetuneCreateRequest, state: State, caller: Writer
) -> Response:
    ft = await state.fine_tunes.create(caller, unstable_request(body))
    return json_response({"id": ft.id})


@router.get("/unstable/finetune/get", responses=answers(UnstableFinetune, errors=[404]))
async def unstable_finetune_get(
    state: State, caller: Caller, id: Id | None = None, slug: Id | None = None
) -> Response:
    return json_response(unstable_view(await state.fine_tunes.find(caller, id=id, slug=slug)))


@router.post("/unstable/finetune/delete", responses=answers(DeletedFlag, errors=[404]))
async def unstable_finetune_delete(
    body: UnstableFinetuneDeleteRequest, state: State, caller: Writer
) -> Response:
    ft = await state.fine_tunes.find(caller, id=body.id, slug=body.slug)
    await state.fine_tunes.delete(caller, ft.slug)
    return json_response({"deleted": True})
