"""A call refused before it reaches a model (a field of the wrong type, a body nested too deep,
JSON that does not parse) is logged on ``/responses`` and ``/messages`` as on chat: status 400,
the error message, and the body as sent (``{"raw": ...}`` when it is not JSON). A read-only
key's calls are never logged, refused ones included."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from conftest import Gateway

MODEL = "gpt-4o-mini"
DEEP = 200  # past the default limit of 128 levels


def _body(endpoint: str, marker: str) -> dict[str, Any]:
    if endpoint == "responses":
        return {"model": MODEL, "input": marker}
    return {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": marker}]}


def _strict(endpoint: str, marker: str) -> dict[str, Any]:
    """A body with a count sent as a string: valid JSON, refused by the strict types."""
    field = "max_output_tokens" if endpoint == "responses" else "max_tokens"
    return {**_body(endpoint, marker), field: "10"}


def _raw(endpoint: str, case: str, marker: str) -> bytes:
    if case == "strict-type":
        return json.dumps(_strict(endpoint, marker)).encode()
    text = json.dumps(_body(endpoint, marker))
    if case == "too-deep":
        return (text[:-1] + ', "extra": ' + "[" * DEEP + "]" * DEEP + "}").encode()
    return text[:-1].encode()  # malformed: the closing brace is missing


def _error_message(endpoint: str, answer: httpx.Response) -> str:
    body = answer.json()
    if endpoint == "messages":  # Anthropic's error body
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["type"] == "invalid_request_error"
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    return message


def _post(gateway: Gateway, endpoint: str, raw: bytes, key: str | None = None) -> httpx.Response:
    with gateway.http(key) as h:
        return h.post(f"/{endpoint}", content=raw, headers={"content-type": "application/json"})


def _rows(gateway: Gateway, marker: str) -> list[dict[str, Any]]:
    with gateway.http() as h:
        found = h.get("/logs", params={"contains": marker})
    assert found.status_code == 200, found.text
    rows: list[dict[str, Any]] = found.json()["data"]
    return rows


@pytest.mark.parametrize("case", ["strict-type", "too-deep", "malformed"])
@pytest.mark.parametrize("endpoint", ["responses", "messages"])
def test_refusals_logged_with_status_message_and_body_as_sent(
    gateway: Gateway, endpoint: str, case: str
) -> None:
    marker = uuid.uuid4().hex
    raw = _raw(endpoint, case, marker)
    answer = _post(gateway, endpoint, raw)
    assert answer.status_code == 400, answer.text
    message = _error_message(endpoint, answer)
    logged = gateway.wait_for_log(marker)
    assert logged["statusCode"] == 400
    assert logged["errorMessage"] == message
    expected = json.loads(raw) if case == "strict-type" else {"raw": raw.decode()}
    assert logged["reqPayload"] == expected
    if case == "strict-type":
        field = "max_output_tokens" if endpoint == "responses" else "max_tokens"
        assert field in message
    assert [row["statusCode"] for row in _rows(gateway, marker)] == [400]


@pytest.mark.parametrize("endpoint", ["responses", "messages"])
def test_refusals_logged_never_for_a_read_only_key(gateway: Gateway, endpoint: str) -> None:
    unlogged, logged = uuid.uuid4().hex, uuid.uuid4().hex
    for case in ("strict-type", "too-deep", "malformed"):
        answer = _post(gateway, endpoint, _raw(endpoint, case, unlogged), gateway.read_only_key)
        assert answer.status_code == 400, answer.text
        _error_message(endpoint, answer)
    # A refusal sent afterwards with a logging key is logged: the read-only ones were not.
    assert _post(gateway, endpoint, _raw(endpoint, "strict-type", logged)).status_code == 400
    assert gateway.wait_for_log(logged)["statusCode"] == 400
    assert _rows(gateway, unlogged) == []
