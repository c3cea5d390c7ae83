"""Errors on ``/chat/completions`` and friends: what a client sees when the request, the key or
the upstream is wrong. One contract test walks every kind of failure and checks the envelope
``{"error": {message, type, param, code}, "message", "code"}``; the others check how the
``openai`` SDK reads them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import openai
import pytest

from conftest import FakeProvider, Gateway, free_port

OK_MESSAGES = [{"role": "user", "content": "hi"}]


def _chat(**fields: Any) -> dict[str, Any]:
    return {"json": {"model": "gpt-4o", "messages": OK_MESSAGES, **fields}}


def _raw(content: bytes, **headers: str) -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": "application/json", **headers}}


def _with_headers(**headers: str) -> dict[str, Any]:
    return {"json": {"model": "gpt-4o", "messages": OK_MESSAGES}, "headers": headers}


# (case, request kwargs for POST /chat/completions, the `param` the error must name)
BAD_CHAT_REQUESTS: list[tuple[str, dict[str, Any], str | None]] = [
    ("body is not JSON", _raw(b'{"model": "gpt-4o",'), None),
    ("body is not an object", _raw(b'[{"model": "gpt-4o"}]'), None),
    ("model missing", {"json": {"messages": OK_MESSAGES}}, "model"),
    ("model empty", _chat(model=""), "model"),
    ("messages missing", {"json": {"model": "gpt-4o"}}, "messages"),
    ("messages empty", _chat(messages=[]), "messages"),
    ("messages not a list", _chat(messages="hi"), "messages"),
    ("unknown role", _chat(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
    ("role missing", _chat(messages=[*OK_MESSAGES, {"content": "x"}]), "messages[1].role"),
    ("content not text", _chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    (
        "image part without url",
        _chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        "messages[0].content[0].image_url.url",
    ),
    (
        "tool message without id",
        _chat(messages=[{"role": "tool", "content": "x"}]),
        "messages[0].tool_call_id",
    ),
    ("temperature too high", _chat(temperature=3), "temperature"),
    ("top_p too high", _chat(top_p=1.5), "top_p"),
    ("n zero", _chat(n=0), "n"),
    ("max_tokens not a number", _chat(max_tokens="many"), "max_tokens"),
    ("tool without function", _chat(tools=[{"type": "function"}]), "tools[0].function"),
    (
        "tool function without name",
        _chat(tools=[{"type": "function", "function": {}}]),
        "tools[0].function.name",
    ),
    ("tool_choice unknown", _chat(tool_choice="sometimes"), "tool_choice"),
    ("response_format unknown type", _chat(response_format={"type": "xml"}), "response_format.type"),
    (
        "json_schema without spec",
        _chat(response_format={"type": "json_schema"}),
        "response_format.json_schema",
    ),
    (
        "json_schema without name",
        _chat(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
        "response_format.json_schema.name",
    ),
    ("metadata value not a string", _chat(metadata={"a": 1}), "metadata.a"),
    ("top_logprobs without logprobs", _chat(top_logprobs=2), "top_logprobs"),
    ("stream_options without stream", _chat(stream_options={"include_usage": True}), "stream_options"),
    ("five stop sequences", _chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    ("op-tags not JSON", _with_headers(**{"op-tags": "{not json"}), "op-tags"),
    ("op-tags not an object", _with_headers(**{"op-tags": '["a"]'}), "op-tags"),
    ("op-cache unknown mode", _with_headers(**{"op-cache": "always"}), "op-cache"),
    ("op-criteria not JSON", _with_headers(**{"op-criteria": "is-polite"}), "op-criteria"),
    ("anthropic n > 1", _chat(model="anthropic:claude-3-5-sonnet", n=2), "n"),
    ("model prefix without name", _chat(model="anthropic:"), "model"),
]


def _assert_envelope(r: httpx.Response, status: int, code: str, case: str) -> dict[str, Any]:
    assert r.status_code == status, f"{case}: {r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/json"), case
    body = r.json()
    assert set(body) >= {"error", "message", "code"}, case
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, case
    assert isinstance(error["message"], str) and error["message"], case
    assert isinstance(error["type"], str) and error["type"], case
    assert body["message"] == error["message"], case
    assert body["code"] == code, case
    return dict(error)


def test_errors_contract_every_failure_has_the_envelope(gateway: Gateway) -> None:
    with gateway.http() as h:
        for case, request, param in BAD_CHAT_REQUESTS:
            r = h.post("/chat/completions", **request)
            error = _assert_envelope(r, 400, "BAD_REQUEST", case)
            assert error["type"] == "invalid_request_error", case
            assert error["param"] == param, f"{case}: {error}"
            if param is not None and not param.startswith(("op-", "model")):
                # Validation messages name the field too; header and model errors have their own
                # wording ("Failed to parse tags: …", as OpenPipe says it).
                assert param.split("[")[0].split(".")[0] in error["message"], f"{case}: {error['message']}"

        slug = f"dup-{uuid.uuid4().hex[:8]}"
        provider = {"slug": slug, "baseUrl": f"http://127.0.0.1:{free_port()}/v1"}
        assert h.post("/external-providers", json=provider).status_code == 201
        read_only = {"Authorization": f"Bearer {gateway.read_only_key}"}
        # (case, method, path, request kwargs, status, OpenPipe code)
        others: list[tuple[str, str, str, dict[str, Any], int, str]] = [
            (
                "unknown key",
                "POST",
                "/chat/completions",
                {**_chat(), "headers": {"Authorization": "Bearer x"}},
                401,
                "UNAUTHORIZED",
            ),
            (
                "read-only key, OpenAI model",
                "POST",
                "/chat/completions",
                {**_chat(), "headers": read_only},
                403,
                "FORBIDDEN",
            ),
            (
                "read-only key, write call",
                "GET",
                "/external-providers",
                {"headers": read_only},
                403,
                "FORBIDDEN",
            ),
            (
                "unknown fine-tune",
                "POST",
                "/chat/completions",
                _chat(model="openpipe:nope"),
                404,
                "NOT_FOUND",
            ),
            ("unknown route", "GET", "/no-such-route", {}, 404, "NOT_FOUND"),
            ("duplicate provider", "POST", "/external-providers", {"json": provider}, 409, "CONFLICT"),
            ("upstream 429", "POST", "/chat/completions", _chat(model="fail-429"), 429, "TOO_MANY_REQUESTS"),
            ("upstream 500", "POST", "/chat/completions", _chat(model="fail-500"), 502, "BAD_GATEWAY"),
            (
                "upstream unreachable",
                "POST",
                "/chat/completions",
                _chat(model=f"openpipe:{slug}/m"),
                502,
                "BAD_GATEWAY",
            ),
        ]
        try:
            r = httpx.post(f"{gateway.base_url}/chat/completions", **_chat())
            _assert_envelope(r, 401, "UNAUTHORIZED", "no key")
            for case, method, path, request, status, code in others:
                _assert_envelope(h.request(method, path, **request), status, code, case)
        finally:
            h.delete(f"/external-providers/{slug}")


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
    ],
)
def test_errors_upstream_4xx_keeps_status_and_message(
    gateway: Gateway, status: int, exception: type[openai.APIStatusError]
) -> None:
    with pytest.raises(exception) as exc:
        gateway.client().chat.completions.create(model=f"fail-{status}", messages=OK_MESSAGES)  # type: ignore[arg-type]
    assert exc.value.status_code == status
    body: Any = exc.value.body
    assert body["message"] == f"fake failure {status}"
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "model" and body["code"] == "fake_error"


@pytest.mark.parametrize("status", [500, 503])
def test_errors_upstream_5xx_is_bad_gateway(gateway: Gateway, status: int) -> None:
    with pytest.raises(openai.InternalServerError) as exc:
        gateway.client().chat.completions.create(model=f"fail-{status}", messages=OK_MESSAGES)  # type: ignore[arg-type]
    assert exc.value.status_code == 502
    body: Any = exc.value.body
    assert f"fake failure {status}" in body["message"]


def test_errors_unreachable_upstream_is_bad_gateway(gateway: Gateway) -> None:
    slug = f"closed-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        r = h.post(
            "/external-providers", json={"slug": slug, "baseUrl": f"http://127.0.0.1:{free_port()}/v1"}
        )
        assert r.status_code == 201
        try:
            client = gateway.client()
            with pytest.raises(openai.InternalServerError) as exc:
                client.chat.completions.create(model=f"openpipe:{slug}/any", messages=OK_MESSAGES)  # type: ignore[arg-type]
            assert exc.value.status_code == 502
            assert "Could not reach" in exc.value.body["message"]  # type: ignore[index]
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(
                    model=f"openpipe:{slug}/any", messages=OK_MESSAGES, stream=True
                )  # type: ignore[arg-type]
        finally:
            h.delete(f"/external-providers/{slug}")


def test_errors_unknown_openpipe_model_is_not_found(gateway: Gateway, fake_provider: FakeProvider) -> None:
    fake_provider.clear()
    client = gateway.client()
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="openpipe:unknown-slug", messages=OK_MESSAGES)  # type: ignore[arg-type]
    assert "`openpipe:unknown-slug` does not exist" in exc.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="openpipe:no-such-provider/gpt-4o", messages=OK_MESSAGES)  # type: ignore[arg-type]
    assert "does not exist" in exc.value.body["message"]  # type: ignore[index]
    assert fake_provider.requests() == []


def test_errors_failed_calls_are_logged_with_status(gateway: Gateway) -> None:
    m = f"m{uuid.uuid4().hex[:8]}"
    with pytest.raises(openai.RateLimitError):
        gateway.client().chat.completions.create(model="fail-429", messages=[{"role": "user", "content": m}])
    deadline = time.monotonic() + 5
    while m not in json.dumps((latest := gateway.latest())["reqPayload"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert latest["statusCode"] == 429
    assert latest["errorMessage"] == "fake failure 429"


def test_errors_invalid_request_is_logged_as_sent(gateway: Gateway) -> None:
    m = f"m{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        r = h.post(
            "/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": m}], "n": 0},
        )
    assert r.status_code == 400
    latest = gateway.latest()
    assert latest["statusCode"] == 400
    assert latest["reqPayload"]["messages"][0]["content"] == m


def test_errors_framework_404_and_405_use_the_same_types_as_the_services(gateway: Gateway) -> None:
    with gateway.http() as h:
        unknown = h.get("/no-such-route")
        wrong_method = h.put("/datasets")
        missing = h.get("/datasets/nope")
    assert unknown.status_code == 404 and missing.status_code == 404
    assert unknown.json()["error"]["type"] == missing.json()["error"]["type"] == "not_found_error"
    assert unknown.json()["message"] == "Not Found: GET /api/v1/no-such-route"
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "METHOD_NOT_SUPPORTED"
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"
    assert "GET" in wrong_method.headers["allow"]  # the framework's Allow header is kept
