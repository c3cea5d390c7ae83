"""``/base-models``: the models the local engine serves as ``local:<name>``."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.db.base_models import BaseModel as Registered

router = APIRouter(tags=["base-models"])


class AddBaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    name: str | None = None
    base: str | None = None


def _view(m: Registered) -> dict[str, object]:
    return {
        "id": f"local:{m.name}",
        "name": m.name,
        "kind": m.kind,
        "base": m.base,
        "source": m.source,
        "createdAt": m.created_at,
    }


@router.get("/base-models")
async def list_base_models(state: State, caller: Caller) -> Response:
    return json_response({"object": "list", "data": [_view(m) for m in await state.base_models.list()]})


@router.post("/base-models")
async def add_base_model(body: AddBaseModel, state: State, caller: Writer) -> Response:
    model = await state.base_models.add(body.source, body.name, body.base)
    state.local.invalidate()
    return json_response(_view(model), status_code=201)


@router.delete("/base-models/{name:path}")
async def remove_base_model(name: str, state: State, caller: Writer) -> Response:
    await state.base_models.remove(name)
    state.local.invalidate()
    return json_response({"id": f"local:{name}", "deleted": True})
