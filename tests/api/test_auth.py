"""Project keys: who may call what. A missing or unknown key is a 401; a read-only key may read
and call non-OpenAI models but never proxies OpenAI, never writes and never causes logging."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import openai
import pytest

from conftest import FakeProvider, Gateway

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
READ_ONLY_OPENAI = "Read-only OpenPipe API keys cannot access the base OpenAI API"


def _assert_unauthorized(r: httpx.Response) -> str:
    assert r.status_code == 401
    body = r.json()
    assert body["code"] == "UNAUTHORIZED"
    assert body["error"]["type"] == "authentication_error"
    assert body["message"] == body["error"]["message"]
    return str(body["message"])


@pytest.mark.parametrize("prefix", ["/api/v1", "/v1"])
def test_auth_missing_key_is_unauthorized(gateway: Gateway, prefix: str) -> None:
    r = httpx.post(f"{gateway.root}{prefix}/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES})
    assert "Missing API key" in _assert_unauthorized(r)
    assert "Missing API key" in _assert_unauthorized(httpx.get(f"{gateway.root}{prefix}/models"))


def test_auth_malformed_header_is_unauthorized(gateway: Gateway) -> None:
    for header in (f"Basic {gateway.key}", "Bearer", gateway.key):
        r = httpx.get(f"{gateway.base_url}/models", headers={"Authorization": header})
        _assert_unauthorized(r)


def test_auth_unknown_key_is_unauthorized(gateway: Gateway, fake_provider: FakeProvider) -> None:
    fake_provider.clear()
    bogus = "opk_" + "x" * 42
    with pytest.raises(openai.AuthenticationError) as exc:
        gateway.client(bogus).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert exc.value.status_code == 401
    assert exc.value.body["message"] == "Invalid API key"  # type: ignore[index]
    assert exc.value.code == "invalid_api_key"
    assert fake_provider.requests() == []


@pytest.mark.parametrize("model", ["gpt-4o", "openai:gpt-4o", "ft:gpt-4o-mini:acme::abc"])
def test_auth_read_only_key_cannot_proxy_openai(
    gateway: Gateway, fake_provider: FakeProvider, model: str
) -> None:
    fake_provider.clear()
    client = gateway.client(gateway.read_only_key)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model=model, messages=MESSAGES)
    assert exc.value.status_code == 403
    assert exc.value.body["message"] == READ_ONLY_OPENAI  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert fake_provider.requests() == []


@pytest.mark.parametrize("model", ["anthropic:claude-3-5-sonnet-20241022", "gemini:gemini-2.0-flash"])
def test_auth_read_only_key_calls_other_providers_without_logging(
    gateway: Gateway, fake_provider: FakeProvider, model: str
) -> None:
    m = f"m{uuid.uuid4().hex[:8]}"
    client = gateway.client(gateway.read_only_key)
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": m}])
    assert r.choices[0].message.content == f"echo: {m}"
    streamed = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": m}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == f"echo: {m}"
    assert fake_provider.last()["body"]["model"] == model.split(":", 1)[1]
    latest = gateway.latest(gateway.read_only_key)
    assert latest is None or m not in json.dumps(latest["reqPayload"])


def test_auth_read_only_key_can_read(gateway: Gateway) -> None:
    with gateway.http(gateway.read_only_key) as h:
        assert h.get("/models").status_code == 200
        assert h.get("/logs").status_code == 200


WRITE_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    (
        "POST",
        "/report",
        {"requestedAt": 1, "receivedAt": 2, "reqPayload": {}, "respPayload": {}, "statusCode": 200},
    ),
    (
        "POST",
        "/report-anthropic",
        {"requestedAt": 1, "receivedAt": 2, "reqPayload": {}, "respPayload": {}, "statusCode": 200},
    ),
    (
        "POST",
        "/logs/update-metadata",
        {"filters": [{"field": "model", "equals": "x"}], "metadata": {"a": "b"}},
    ),
    ("GET", "/provider-keys", None),
    ("PUT", "/provider-keys/openai", {"apiKey": "sk-stolen"}),
    ("DELETE", "/provider-keys/openai", None),
    ("GET", "/external-providers", None),
    ("POST", "/external-providers", {"slug": "ro-attempt", "baseUrl": "http://127.0.0.1:9/v1"}),
    ("DELETE", "/external-providers/ro-attempt", None),
    ("POST", "/external-providers/ro-attempt/models", {"slug": "m"}),
]


def test_auth_read_only_key_cannot_write(gateway: Gateway) -> None:
    with gateway.http() as h:
        keys_before = h.get("/provider-keys").json()["data"]
    with gateway.http(gateway.read_only_key) as h:
        for method, path, body in WRITE_CALLS:
            r = h.request(method, path, json=body)
            assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text}"
            assert r.json()["code"] == "FORBIDDEN"
            assert r.json()["error"]["type"] == "permission_error"
            assert "read-only API key" in r.json()["message"], path
    with gateway.http() as h:
        assert h.get("/provider-keys").json()["data"] == keys_before
        assert all(p["slug"] != "ro-attempt" for p in h.get("/external-providers").json()["data"])
