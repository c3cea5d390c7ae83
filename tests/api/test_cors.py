"""CORS: off unless ``TUNEPIPE_CORS_ORIGINS`` is set; then browsers from those origins may call
the API with the headers the OpenAI, Anthropic and OpenPipe clients send, and read tunepipe's
response headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from conftest import FakeProvider, Gateway, _start, base_env, free_port

ALLOWED = "https://app.example.com"
# What the openai SDK sends from a browser, plus OpenPipe's and Anthropic's headers.
BROWSER_HEADERS = (
    "authorization, content-type, x-stainless-os, x-stainless-lang, x-stainless-arch, "
    "x-stainless-runtime, x-stainless-runtime-version, x-stainless-package-version, "
    "x-stainless-retry-count, x-stainless-timeout, op-tags, op-cache, op-log-request, "
    "x-api-key, anthropic-version"
)


@dataclass
class Server:
    root: str
    key: str
    origins: str


@pytest.fixture(scope="module", params=[ALLOWED, "*"], ids=["one-origin", "any-origin"])
def cors_server(
    request: pytest.FixtureRequest, fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("cors")
    env = base_env(home, fake_provider, None)
    key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env.update(TUNEPIPE_CORS_ORIGINS=f"{request.param}, https://other.example.org", TUNEPIPE_API_KEY=key)
    port = free_port()
    proc = _start(env, port)
    try:
        yield Server(f"http://127.0.0.1:{port}", key, request.param)
    finally:
        proc.terminate()
        proc.wait(30)


def preflight(root: str, origin: str, headers: str = BROWSER_HEADERS) -> httpx.Response:
    return httpx.options(
        f"{root}/api/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def allowed_origin(server: Server) -> str:
    return "*" if server.origins == "*" else ALLOWED


def test_cors_preflight_allows_configured_origin_and_client_headers(cors_server: Server) -> None:
    r = preflight(cors_server.root, ALLOWED)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ("*" if cors_server.origins == "*" else ALLOWED)
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in r.headers["access-control-allow-headers"].lower().split(",")}
    assert {h.strip() for h in BROWSER_HEADERS.split(",")} <= allowed
    assert r.headers["x-request-id"]


def test_cors_preflight_refuses_unlisted_origin_and_header(cors_server: Server) -> None:
    unlisted_header = preflight(cors_server.root, ALLOWED, "authorization, x-not-a-client-header")
    assert unlisted_header.status_code == 400
    if cors_server.origins == "*":
        return  # any origin is allowed
    other = preflight(cors_server.root, "https://evil.example.net")
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


def test_cors_simple_request_exposes_tunepipe_headers(cors_server: Server) -> None:
    with openai.OpenAI(
        base_url=f"{cors_server.root}/api/v1",
        api_key=cors_server.key,
        max_retries=0,
        default_headers={"Origin": ALLOWED},
    ) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello from a browser"}]
        )
    assert raw.parse().choices[0].message.content
    assert raw.headers["access-control-allow-origin"] == allowed_origin(cors_server)
    exposed = {h.strip() for h in raw.headers["access-control-expose-headers"].lower().split(",")}
    assert {"x-request-id", "op-cache-status", "x-ratelimit-remaining-requests"} <= exposed


def test_cors_error_responses_carry_cors_headers(cors_server: Server) -> None:
    r = httpx.post(
        f"{cors_server.root}/api/v1/chat/completions",
        json={"model": "gpt-4o", "messages": []},
        headers={"Origin": ALLOWED, "Authorization": "Bearer opk_wrong"},
    )
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.headers["access-control-allow-origin"] == allowed_origin(cors_server)


def test_cors_off_by_default(gateway: Gateway) -> None:
    r = preflight(gateway.root, ALLOWED)
    assert r.status_code == 405
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert not any(name.startswith("access-control-") for name in r.headers)
    with gateway.client(default_headers={"Origin": ALLOWED}) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
    assert raw.status_code == 200
    assert not any(name.startswith("access-control-") for name in raw.headers)
