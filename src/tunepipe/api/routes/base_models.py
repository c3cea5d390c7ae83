"""``/base-models``: the models the local engine serves as ``local:<name>``.

Base models belong to the installation, not to a project: adding and removing them takes an
admin key, and only an admin key sees where a model came from and where it lives on the server
(a project's key sees names and kinds).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import AdminDep, KeyHolder, State
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.api.routes import paths  # noqa: F401  (registers `{name:anypath}`)
from tunepipe.domain.projects import Admin
from tunepipe.protocol.answers_admin import BaseModelAnswer, BaseModelList, IdDeleted
from tunepipe.protocol.providers import AddBaseModel, base_model_view
from tunepipe.protocol.types import Id

router = APIRouter(tags=["base-models"])


@router.get("/base-models", responses=answers(BaseModelList))
async def list_base_models(state: State, caller: KeyHolder) -> Response:
    models = await state.base_models.all()
    admin = isinstance(caller, Admin)
    return json_response({"object": "list", "data": [base_model_view(m, admin=admin) for m in models]})


@router.post("/base-models", status_code=201, responses=answers(BaseModelAnswer, 201, errors=[409]))
async def add_base_model(body: AddBaseModel, state: State, caller: AdminDep) -> Response:
    model = await state.base_models.add(body.source, body.name, body.base)
    return json_response(base_model_view(model, admin=True), status_code=201)


@router.delete("/base-models/{name:anypath}", responses=answers(IdDeleted))
async def remove_base_model(name: Id, state: State, caller: AdminDep) -> Response:
    await state.base_models.remove(name)
    return json_response({"id": f"local:{name}", "deleted": True})
