"""Check what tunepipe answers against OpenAI's own response schemas (vendored, without their
descriptions, in ``fixtures/openai_chat_responses.schema.json``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parent / "fixtures" / "openai_chat_responses.schema.json"


def _nullable(node: Any) -> Any:
    """The document still marks some fields OpenAPI 3.0's way (``nullable: true``); in JSON
    Schema that is ``null`` among the types (and the enum)."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
        if "$ref" in out:
            out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
    return out


@cache
def _validator(name: str) -> Draft202012Validator:
    doc = _nullable(json.loads(SCHEMAS.read_text()))
    return Draft202012Validator({**doc, "$ref": f"#/$defs/{name}"})


def assert_valid(obj: Any, name: str) -> None:
    """``obj`` is valid against OpenAI's ``name`` schema; every violation is listed."""
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(name).iter_errors(obj)
    ]
    assert not errors, f"not a valid {name}: {errors}\n{json.dumps(obj)[:2000]}"


def check_completion(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """POST a non-streaming chat completion and check the answer; return it."""
    r = http.post("/chat/completions", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert_valid(answer, "CreateChatCompletionResponse")
    return dict(answer)


def check_stream(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streaming chat completion and check every chunk; return them."""
    chunks: list[dict[str, Any]] = []
    with http.stream("POST", "/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    assert chunks
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
    return chunks
