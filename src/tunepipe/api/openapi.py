"""The API document (``/openapi.json``) and its Swagger UI page (``/docs``), served offline.

FastAPI documents its own path operations. Three things are added here:

* **Operations that are plain Starlette routes** (``/chat/completions`` is one, for speed): each is
  an :class:`Operation` in :data:`OPERATIONS` naming its pydantic request and response models,
  rendered under every API prefix. Documenting another such endpoint is one more entry.
* **Bearer auth**: an HTTP bearer security scheme, applied to every operation that takes a key
  (those that depend on ``Caller`` or ``Writer``).
* **The errors tunepipe really answers with**, in the error envelope: 400 where FastAPI would say
  422 (a validation error is a 400 here, :mod:`tunepipe.api.errors`), 401 with a key, 403 with a
  read/write key, 404 with a path parameter, 413 with a request body (the size limit of
  :class:`~tunepipe.api.middleware.BodyLimitMiddleware`).

``/docs`` is FastAPI's Swagger UI page with its assets from the ``swagger-ui-bundle`` package, so
it works without a network. That Swagger UI (4.x) renders OpenAPI 3.0 only, so the page reads
``/docs/openapi.json``: the same document with the few JSON Schema 2020-12 forms that OpenAPI 3.1
allows rewritten to their 3.0 spelling (:func:`as_openapi_30`). ReDoc is off: no pinned package
ships it.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, routing
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from tunepipe.api.deps import AdminDep, Caller, KeyHolder, Writer
from tunepipe.api.json import json_response
from tunepipe.protocol.answers_admin import Completion, EmbeddingList, MessageObject, ResponseObject
from tunepipe.protocol.chat import ChatCompletionRequest
from tunepipe.protocol.chat_response import ChatCompletion, ChatCompletionChunk
from tunepipe.protocol.completions import CompletionRequest
from tunepipe.protocol.embeddings import EmbeddingsRequest
from tunepipe.protocol.messages import MessagesRequest
from tunepipe.protocol.responses import ResponsesRequest

REF = "#/components/schemas/{model}"
BEARER = "bearerAuth"
DOCS = "/docs"
ASSETS = f"{DOCS}/static"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class Issue(BaseModel):
    message: str


class ErrorResponse(BaseModel):
    """Every error: OpenAI's ``error`` object, and OpenPipe's top-level ``message`` and ``code``
    (``issues`` on a validation error)."""

    error: ErrorDetail
    message: str
    code: str
    issues: list[Issue] | None = None


ERROR_TEXT = {
    400: "The request is malformed or names something invalid",
    401: "No API key, or one that is not valid",
    403: "The key may not do this (a read-only key calling a write operation)",
    404: "Nothing by this name in the key's project",
    409: "It conflicts with what exists (a name or slug already taken)",
    413: "The request body is larger than the server accepts (`TUNEPIPE_MAX_REQUEST_BYTES`)",
    429: "A rate limit was reached (see Retry-After)",
    502: "The upstream provider failed or answered with an error",
    503: "The database cannot be reached right now (see Retry-After)",
}


@dataclass(frozen=True, slots=True)
class Operation:
    """An endpoint that FastAPI does not document by itself (a plain Starlette route)."""

    path: str  # under each API prefix
    method: str
    operation_id: str
    summary: str
    request: type[BaseModel]
    response: type[BaseModel] | None  # None: a JSON object not modelled here
    stream: type[BaseModel] | bool = False  # the `data:` of each event with `stream: true`, or True
    errors: tuple[int, ...] = (400, 401, 403, 404, 413, 429, 502, 503)
    tag: str = "chat"
    anthropic_errors: bool = False  # errors in Anthropic's body, not the OpenAI envelope


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "/chat/completions",
        "post",
        "createChatCompletion",
        "Create a chat completion (OpenAI-compatible; streams with `stream: true`)",
        ChatCompletionRequest,
        ChatCompletion,
        stream=ChatCompletionChunk,
    ),
    Operation(
        "/responses",
        "post",
        "createResponse",
        "Create a model response (OpenAI's Responses API; streams with `stream: true`)",
        ResponsesRequest,
        ResponseObject,
        stream=True,
    ),
    Operation(
        "/messages",
        "post",
        "createMessage",
        "Create a message (Anthropic's Messages API; streams with `stream: true`)",
        MessagesRequest,
        MessageObject,
        stream=True,
        anthropic_errors=True,
    ),
    Operation(
        "/embeddings", "post", "createEmbedding", "Create embeddings", EmbeddingsRequest, EmbeddingList
    ),
    Operation(
        "/completions",
        "post",
        "createCompletion",
        "Create a completion (legacy; streams with `stream: true`)",
        CompletionRequest,
        Completion,
        stream=True,
    ),
)


ANTHROPIC_ERROR = {
    "type": "object",
    "description": "Anthropic's error body: `{type: 'error', error: {type, message}}`",
}


def _error(status: int, *, anthropic: bool = False) -> dict[str, Any]:
    schema = ANTHROPIC_ERROR if anthropic else {"$ref": REF.format(model=ErrorResponse.__name__)}
    return {"description": ERROR_TEXT[status], "content": {"application/json": {"schema": schema}}}


JSONL = {"type": "string", "description": "JSON lines: one JSON object a line"}


def answers(
    model: Any, status: int = 200, *, errors: Sequence[int] = (), description: str = "The answer"
) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: its answer ``model`` (a pydantic model, or a type of them; for
    the document only: the route still sends its own bytes) and the errors it answers with beyond
    those every route gets (:func:`build_document`)."""
    out: dict[int | str, dict[str, Any]] = {status: {"model": model, "description": description}}
    return out | {s: _error(s) for s in errors}


def download(
    media_type: str, description: str, schema: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that streams a file (with ``response_class`` naming no media type)."""
    body = schema or {"type": "string", "format": "binary"}
    return {200: {"description": description, "content": {media_type: {"schema": body}}}}


def _dependency(alias: Any) -> Any:
    return typing.get_args(alias)[1].dependency


def _keyed_routes(app: FastAPI) -> dict[tuple[str, str], bool]:
    """``(path, method)`` of every documented operation that takes a key → whether it needs a
    read/write or an admin one."""
    caller, writer = _dependency(Caller), _dependency(Writer)
    admin, holder = _dependency(AdminDep), _dependency(KeyHolder)
    out: dict[tuple[str, str], bool] = {}
    for route in routing.iter_route_contexts(app.routes):
        path = route.path_format
        if not isinstance(route.original_route, routing.APIRoute) or not route.include_in_schema or not path:
            continue
        stack, calls = list(route.dependant.dependencies), set()
        while stack:
            dep = stack.pop()
            calls.add(dep.call)
            stack.extend(dep.dependencies)
        if calls & {caller, writer, admin, holder}:
            for method in route.methods or ():
                out[(path, method.lower())] = bool(calls & {writer, admin})
    return out


def _add_schemas(doc: dict[str, Any], models: Sequence[tuple[type[BaseModel], Any]]) -> None:
    _, top = models_json_schema(models, ref_template=REF)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in top.get("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two different schemas are named {name!r} in the API document")


def _event(data: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event as a reader parses it (OpenAPI 3.2's reading of `text/event-stream`,
    which schemathesis applies): an object with its `data` (and `event`, `id`) as strings."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"event": {"type": "string"}, "id": {"type": "string"}, "data": data},
    }


def _json_or_done(model: type[BaseModel]) -> dict[str, Any]:
    """A `data:` that is ``model`` as JSON, or the closing `[DONE]`."""
    return {
        "type": "string",
        "anyOf": [
            {"const": "[DONE]"},
            {
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": REF.format(model=model.__name__)},
            },
        ],
    }


def _render(op: Operation, operation_id: str) -> dict[str, Any]:
    answer = {"$ref": REF.format(model=op.response.__name__)} if op.response else {"type": "object"}
    content: dict[str, Any] = {"application/json": {"schema": answer}}
    description = "The answer"
    if isinstance(op.stream, type):
        content["text/event-stream"] = {"schema": _event(_json_or_done(op.stream))}
        description = (
            "The answer; with `stream: true`, server-sent events, each `data:` one "
            f"{op.stream.__name__}, the last `data: [DONE]`"
        )
    elif op.stream:
        content["text/event-stream"] = {"schema": _event({"type": "string"})}
        description = "The answer; with `stream: true`, server-sent events"
    body = {"$ref": REF.format(model=op.request.__name__)}
    return {
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": operation_id,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": description, "content": content}}
        # A 413 is answered before the route runs, so always in the OpenAI envelope.
        | {str(s): _error(s, anthropic=op.anthropic_errors and s != 413) for s in op.errors},
        "security": [{BEARER: []}],
    }


def build_document(app: FastAPI, prefixes: Sequence[str], operations: Sequence[Operation]) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    keyed = _keyed_routes(app)
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            statuses = [400] if responses.pop("422", None) is not None else []
            if (path, method) in keyed:
                op["security"] = [{BEARER: []}]
                statuses += [401, 403] if keyed[(path, method)] else [401]
                statuses.append(503)  # a key is looked up in the database
            if "{" in path:
                statuses.append(404)
            if "requestBody" in op:
                statuses.append(413)
            for status in statuses:
                responses.setdefault(str(status), _error(status))
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    models: list[tuple[type[BaseModel], Any]] = [(ErrorResponse, "serialization")]
    for op in operations:
        models.append((op.request, "validation"))
        if op.response is not None:
            models.append((op.response, "serialization"))
        if isinstance(op.stream, type):
            models.append((op.stream, "serialization"))
    _add_schemas(doc, models)
    for i, prefix in enumerate(prefixes):
        for op in operations:
            operation_id = (
                op.operation_id if i == 0 else f"{op.operation_id}_{prefix.strip('/').replace('/', '_')}"
            )
            doc["paths"].setdefault(prefix + op.path, {})[op.method] = _render(op, operation_id)
    doc["components"]["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "A project API key (`opk_…`); an admin key (`opa_…`) for projects and base models",
        }
    }
    return doc


def _as_30(node: Any) -> Any:
    if isinstance(node, list):
        return [_as_30(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _as_30(v) for k, v in node.items()}
    variants = out.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out.update(rest[0])
        else:
            out["anyOf" if len(rest) > 1 else "allOf"] = rest
        out["nullable"] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain], out[bound] = out[bound], True
    if isinstance(out.get("examples"), list) and out["examples"]:
        out["example"] = out.pop("examples")[0]
    return out


def as_openapi_30(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` for a reader of OpenAPI 3.0 (Swagger UI 4): nullable instead of a null type,
    ``enum`` instead of ``const``, boolean exclusive bounds, one ``example``."""
    return {**_as_30(doc), "openapi": "3.0.3"}


def install(app: FastAPI, prefixes: Sequence[str], operations: Sequence[Operation] = OPERATIONS) -> None:
    """Serve the document at ``app.openapi_url`` and Swagger UI at ``/docs`` (create the app with
    ``docs_url=None, redoc_url=None``; call after every route is added)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, prefixes, operations)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    swagger_30: dict[str, Any] = {}

    async def docs_document(_request: Request) -> Response:
        if not swagger_30:
            swagger_30.update(as_openapi_30(app.openapi()))
        return json_response(swagger_30)

    async def docs_page(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{DOCS}/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    app.add_route(DOCS, docs_page, include_in_schema=False)
    app.add_route(f"{DOCS}/openapi.json", docs_document, include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
