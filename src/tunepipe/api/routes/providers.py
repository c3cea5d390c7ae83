"""Provider credentials (``/provider-keys``) and external model providers
(``/external-providers``) of the calling project."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.protocol.answers_admin import (
    ExternalModelAnswer,
    ExternalProviderAnswer,
    ExternalProviderList,
    ProviderKeyDeleted,
    ProviderKeyList,
    ProviderKeySet,
    SlugDeleted,
)
from tunepipe.protocol.providers import (
    ExternalModelBody,
    ExternalProviderBody,
    ProviderKeyBody,
    external_model_view,
    provider_key_view,
    provider_view,
)
from tunepipe.protocol.types import Id

router = APIRouter(tags=["providers"])


@router.get("/provider-keys", responses=answers(ProviderKeyList))
async def list_provider_keys(state: State, caller: Writer) -> Response:
    keys = await state.providers.list_keys(caller.project.id)
    return json_response({"object": "list", "data": [provider_key_view(k) for k in keys]})


@router.put("/provider-keys/{provider}", responses=answers(ProviderKeySet))
async def set_provider_key(provider: Id, body: ProviderKeyBody, state: State, caller: Writer) -> Response:
    await state.providers.set_key(caller.project.id, provider, body.api_key, body.base_url)
    return json_response({"provider": provider, "status": "ok"})


@router.delete("/provider-keys/{provider}", responses=answers(ProviderKeyDeleted))
async def delete_provider_key(provider: Id, state: State, caller: Writer) -> Response:
    await state.providers.delete_key(caller.project.id, provider)
    return json_response({"provider": provider, "deleted": True})


@router.get("/external-providers", responses=answers(ExternalProviderList))
async def list_external_providers(state: State, caller: Writer) -> Response:
    providers = await state.providers.list_external(caller.project.id)
    return json_response({"object": "list", "data": [provider_view(p) for p in providers]})


@router.post(
    "/external-providers", status_code=201, responses=answers(ExternalProviderAnswer, 201, errors=[409])
)
async def create_external_provider(body: ExternalProviderBody, state: State, caller: Writer) -> Response:
    created = await state.providers.add_external(
        caller.project.id,
        slug=body.slug,
        kind=body.kind,
        base_url=body.base_url,
        api_key=body.api_key,
        api_version=body.api_version,
    )
    return json_response(provider_view(created), status_code=201)


@router.delete("/external-providers/{slug}", responses=answers(SlugDeleted))
async def delete_external_provider(slug: Id, state: State, caller: Writer) -> Response:
    await state.providers.remove_external(caller.project.id, slug)
    return json_response({"slug": slug, "deleted": True})


@router.post(
    "/external-providers/{slug}/models",
    status_code=201,
    responses=answers(ExternalModelAnswer, 201, errors=[409]),
)
async def add_external_model(slug: Id, body: ExternalModelBody, state: State, caller: Writer) -> Response:
    model = await state.providers.add_model(
        caller.project.id, slug, body.slug, body.input_cost_per_million, body.output_cost_per_million
    )
    return json_response(external_model_view(slug, model), status_code=201)


@router.delete("/external-providers/{slug}/models/{model}", responses=answers(SlugDeleted))
async def remove_external_model(slug: Id, model: Id, state: State, caller: Writer) -> Response:
    await state.providers.remove_model(caller.project.id, slug, model)
    return json_response({"slug": model, "deleted": True})
