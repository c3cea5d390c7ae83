"""Mixture-of-agents configurations of the calling project (``/moa-configs``), each served at
``openpipe:moa-<slug>``; reading takes any key, writing a read/write key."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.protocol.answers_admin import MoaConfigAnswer, MoaConfigDeleted, MoaConfigList
from tunepipe.protocol.moa import CreateMoaConfig, MoaConfigBody, moa_view
from tunepipe.protocol.types import Id

router = APIRouter(tags=["moa"])


@router.post("/moa-configs", status_code=201, responses=answers(MoaConfigAnswer, 201, errors=[409]))
async def create_moa_config(body: CreateMoaConfig, state: State, caller: Writer) -> Response:
    created = await state.moa.create(caller, body.slug, body.config())
    return json_response(moa_view(created), status_code=201)


@router.get("/moa-configs", responses=answers(MoaConfigList))
async def list_moa_configs(state: State, caller: Caller) -> Response:
    found = await state.moa.list_configs(caller)
    return json_response({"object": "list", "data": [moa_view(m) for m in found]})


@router.get("/moa-configs/{slug}", responses=answers(MoaConfigAnswer))
async def get_moa_config(slug: Id, state: State, caller: Caller) -> Response:
    return json_response(moa_view(await state.moa.get(caller, slug)))


@router.put("/moa-configs/{slug}", responses=answers(MoaConfigAnswer))
async def replace_moa_config(slug: Id, body: MoaConfigBody, state: State, caller: Writer) -> Response:
    return json_response(moa_view(await state.moa.replace(caller, slug, body.config())))


@router.delete("/moa-configs/{slug}", responses=answers(MoaConfigDeleted))
async def delete_moa_config(slug: Id, state: State, caller: Writer) -> Response:
    await state.moa.delete(caller, slug)
    return json_response({"object": "moa_config", "slug": slug, "deleted": True})
