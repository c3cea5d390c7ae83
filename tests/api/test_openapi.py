"""The API document (``/openapi.json``) and the Swagger UI page (``/docs``) of a running server.

The document is checked by hand (no OpenAPI validator is installed): every ``$ref`` resolves,
operation ids are unique, authenticated operations declare the bearer scheme, errors are the
envelope tunepipe sends (400, never FastAPI's 422), and ``/chat/completions`` is there with the
models that describe what the server really answers. ``/docs`` must load with no network: every
asset it names is served by the server itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import Gateway
from tunepipe.api.openapi import ErrorResponse
from tunepipe.protocol.chat_response import ChatCompletion, ChatCompletionChunk

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def document(gateway: Gateway) -> dict[str, Any]:
    r = httpx.get(f"{gateway.root}/openapi.json", timeout=30)
    assert r.status_code == 200
    return dict(r.json())


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def component(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/"), ref
    return dict(doc["components"]["schemas"][ref.rsplit("/", 1)[1]])


def test_openapi_document_is_well_formed(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] == "tunepipe" and document["info"]["version"]
    for ref in set(refs(document)):
        component(document, ref)  # resolves
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)) and len(ids) > 100
    for path, method, op in operations(document):
        assert op["responses"], (path, method)
        assert "422" not in op["responses"], (path, method)
        for status, response in op["responses"].items():
            assert response["description"], (path, method, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_openapi_declares_bearer_auth_on_keyed_operations(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    paths = document["paths"]
    for path, method in (
        ("/api/v1/models", "get"),
        ("/v1/models", "get"),
        ("/api/v1/datasets", "post"),
        ("/api/v1/models/{model_id}", "get"),
        ("/api/v1/chat/completions", "post"),
    ):
        op = paths[path][method]
        assert op["security"] == [{"bearerAuth": []}], (path, method)
        assert component(document, op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"])
    assert "security" not in paths["/health"]["get"] and "401" not in paths["/health"]["get"]["responses"]
    assert "403" in paths["/api/v1/datasets"]["post"]["responses"]  # a write: read-only keys get 403
    assert "403" not in paths["/api/v1/datasets"]["get"]["responses"]
    assert "404" in paths["/api/v1/models/{model_id}"]["get"]["responses"]


def test_openapi_errors_are_the_envelope_sent(gateway: Gateway, document: dict[str, Any]) -> None:
    op = document["paths"]["/api/v1/datasets"]["post"]
    schema = component(document, op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"])
    assert set(schema["required"]) == {"error", "message", "code"}
    with gateway.http() as h:
        invalid = h.post("/datasets", json={"name": 7})
        missing = h.get("/models/no-such-model")
    with gateway.http("opk_" + "0" * 42) as h:
        unauthorized = h.get("/models")
    assert (invalid.status_code, missing.status_code, unauthorized.status_code) == (400, 404, 401)
    for r in (invalid, missing, unauthorized):
        body = ErrorResponse.model_validate(r.json())
        assert body.error.message and body.code
    assert ErrorResponse.model_validate(invalid.json()).issues


def test_openapi_documents_chat_completions(gateway: Gateway, document: dict[str, Any]) -> None:
    for prefix in ("/api/v1", "/v1"):
        op = document["paths"][f"{prefix}/chat/completions"]["post"]
        body = component(document, op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
        assert {"model", "messages"} <= set(body["required"]) and "tools" in body["properties"]
        ok = op["responses"]["200"]["content"]
        assert ok["application/json"]["schema"]["$ref"].endswith("/ChatCompletion")
        data = ok["text/event-stream"]["schema"]["properties"]["data"]["anyOf"]
        assert data[0] == {"const": "[DONE]"} and data[1]["contentSchema"]["$ref"].endswith(
            "/ChatCompletionChunk"
        )
        assert {"400", "401", "404", "429"} <= set(op["responses"])
    chunk = component(document, "#/components/schemas/ChatCompletionChunk")
    assert chunk["properties"]["object"]["const"] == "chat.completion.chunk"
    # The documented models describe what the server answers.
    messages = [{"role": "user", "content": "documented"}]
    with gateway.http() as h:
        done = h.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": messages})
        assert done.status_code == 200, done.text
        ChatCompletion.model_validate(done.json(), strict=False)
        body = {"model": "gpt-4o-mini", "messages": messages, "stream": True}
        with h.stream("POST", "/chat/completions", json=body) as streamed:
            assert streamed.headers["content-type"].startswith("text/event-stream")
            data = [line[6:] for line in streamed.iter_lines() if line.startswith("data: ")]
        bad = h.post("/chat/completions", json={"model": "gpt-4o-mini"})
    assert data[-1] == "[DONE]" and len(data) > 1
    for event in data[:-1]:
        ChatCompletionChunk.model_validate(json.loads(event))
    assert bad.status_code == 400 and ErrorResponse.model_validate(bad.json()).error.param == "messages"


def test_openapi_documents_the_other_model_endpoints(document: dict[str, Any]) -> None:
    for path, request in (
        ("/responses", "ResponsesRequest"),
        ("/messages", "MessagesRequest"),
        ("/embeddings", "EmbeddingsRequest"),
        ("/completions", "CompletionRequest"),
    ):
        for prefix in ("/api/v1", "/v1"):
            op = document["paths"][prefix + path]["post"]
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith(f"/{request}") and component(document, ref)["properties"], path
            assert op["security"] == [{"bearerAuth": []}] and "401" in op["responses"]
    messages_error = document["paths"]["/v1/messages"]["post"]["responses"]["400"]
    assert "Anthropic" in messages_error["content"]["application/json"]["schema"]["description"]


def test_docs_page_loads_only_local_assets(gateway: Gateway) -> None:
    page = httpx.get(f"{gateway.root}/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)="([^"]+)\"""", page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert len(urls) >= 4, urls  # stylesheet, icon, script, the document
    assert not re.search(r"https?://|//cdn", page.text)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        r = httpx.get(f"{gateway.root}{url}", timeout=30)
        assert r.status_code == 200 and r.content, url
    script = httpx.get(f"{gateway.root}/docs/static/swagger-ui-bundle.js", timeout=30)
    assert "SwaggerUIBundle" in script.text


def test_docs_document_is_openapi_30_for_swagger_ui(gateway: Gateway, document: dict[str, Any]) -> None:
    r = httpx.get(f"{gateway.root}/docs/openapi.json", timeout=30)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.0.3" and doc["paths"].keys() == document["paths"].keys()
    text = json.dumps(doc)
    assert '{"type": "null"}' not in text and '"const":' not in text
    request = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert request["temperature"]["nullable"] is True and request["temperature"]["type"] == "number"


def test_redoc_is_not_served(gateway: Gateway) -> None:
    r = httpx.get(f"{gateway.root}/redoc", timeout=30)
    assert r.status_code == 404


def _schema(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    return component(doc, node["$ref"]) if "$ref" in node else node


def test_openapi_every_operation_declares_its_answer(document: dict[str, Any]) -> None:
    """A route added without ``responses=`` (or with an empty schema) fails here."""
    missing = []
    for path, method, op in operations(document):
        answers = [r for status, r in op["responses"].items() if status.startswith("2")]
        schemas = [_schema(document, m["schema"]) for r in answers for m in r.get("content", {}).values()]
        if not schemas or not all(s for s in schemas):
            missing.append(f"{method.upper()} {path}")
    assert not missing, missing
    assert len(list(operations(document))) > 200
    downloads = {
        "/v1/models/{slug}/adapter": "application/gzip",
        "/v1/models/{slug}/weights": "application/gzip",
        "/v1/datasets/{dataset_id}/export": "application/x-ndjson",
        "/v1/logs/export": "application/x-ndjson",
    }
    for path, media_type in downloads.items():
        assert list(document["paths"][path]["get"]["responses"]["200"]["content"]) == [media_type]


def test_openapi_both_prefixes_have_the_same_operations(document: dict[str, Any]) -> None:
    def under(prefix: str) -> dict[tuple[str, str], Any]:
        return {
            (path.removeprefix(prefix), method): sorted(op["responses"])
            for path, method, op in operations(document)
            if path.startswith(prefix + "/")
        }

    v1, api_v1 = under("/v1"), under("/api/v1")
    assert v1.keys() == api_v1.keys() and len(v1) > 100
    assert all(v1[k] == api_v1[k] for k in v1)
