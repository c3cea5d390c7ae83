"""The calling project's API keys (``/keys``): any key may list them, a read/write key may
change a key's rate limits or revoke a key; a key of another project is not found."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.protocol.answers_admin import ApiKeyAnswer, ApiKeyList
from tunepipe.protocol.answers_data import Deleted
from tunepipe.protocol.keys import KeyLimitsBody, key_view
from tunepipe.protocol.types import Id

router = APIRouter(tags=["keys"])


@router.get("/keys", responses=answers(ApiKeyList))
async def list_keys(state: State, caller: Caller) -> Response:
    keys = await state.projects.list_keys(caller.project)
    return json_response({"object": "list", "data": [key_view(k) for k in keys]})


@router.patch("/keys/{key_id}", responses=answers(ApiKeyAnswer))
async def set_key_limits(key_id: Id, body: KeyLimitsBody, state: State, caller: Writer) -> Response:
    key = await state.projects.set_limits(caller.project, key_id, body.changes())
    return json_response(key_view(key))


@router.delete("/keys/{key_id}", responses=answers(Deleted))
async def revoke_key(key_id: Id, state: State, caller: Writer) -> Response:
    """Revoke a key of the project (the calling key included): every server refuses it from its
    next call."""
    key = await state.projects.revoke_key(caller.project, key_id)
    return json_response({"id": key.id, "object": "api_key", "deleted": True})
