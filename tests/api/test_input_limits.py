"""Bounded input: JSON nesting, body size, log rows, and a 500 that leaves the connection usable.

The limits at their defaults are checked on the real server (``gateway``); the ones that need a
small limit, or a route that fails, on an app of this process served on a loopback port.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from conftest import FakeProvider, Gateway, free_port
from tunepipe.api.app import create_app
from tunepipe.db.projects import ensure_default_project
from tunepipe.domain.dataset_entries import EntryInvalid
from tunepipe.domain.logs import LoggedCall
from tunepipe.services.container import open_database
from tunepipe.services.datasets.imports import entry_from_call
from tunepipe.settings import Settings

KEY = "opk_" + "l" * 42
SMALL_BODY_LIMIT = 64 * 1024
SMALL_LOG_LIMIT = 4 * 1024


def nested(marker: str, depth: int) -> bytes:
    """A chat request whose JSON nests ``depth`` levels (the outer object included)."""
    return (
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"'
        + marker.encode()
        + b'"}],"extra":'
        + b"[" * (depth - 1)
        + b"]" * (depth - 1)
        + b"}"
    )


def assert_envelope(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_json_depth_chat_too_deep_is_400_and_logged(gateway: Gateway) -> None:
    marker = uuid.uuid4().hex
    headers = {"Content-Type": "application/json"}
    with gateway.http() as h:
        r = h.post("/chat/completions", content=nested(marker, 129), headers=headers)
        assert_envelope(r, 400, "json_too_deep")
        logged = gateway.wait_for_log(marker)
        assert logged["statusCode"] == 400
        assert "deeper than 128" in logged["errorMessage"]
        # At the limit, and past what orjson could encode again (255), the answers differ.
        assert h.post("/chat/completions", content=nested(marker, 128), headers=headers).status_code == 200
        assert_envelope(
            h.post("/chat/completions", content=nested(marker, 300), headers=headers), 400, "json_too_deep"
        )


def test_json_depth_fastapi_route_too_deep_is_400(gateway: Gateway) -> None:
    deep = b'{"name":"deep","extra":' + b"[" * 200 + b"]" * 200 + b"}"
    with gateway.http() as h:
        r = h.post("/datasets", content=deep, headers={"Content-Type": "application/json"})
        assert_envelope(r, 400, "json_too_deep")
        # The same route still parses a body within the limit.
        shallow = h.post("/datasets", json={"name": f"shallow-{uuid.uuid4().hex[:8]}"})
        assert shallow.status_code < 300, shallow.text


def raw_exchange(root: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a fresh socket and read the answer until the server closes it."""
    host, port = root.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_body_size_content_length_over_default_is_413_before_the_body(gateway: Gateway) -> None:
    # 40 MB announced and none sent: the answer comes without the server reading a byte of it.
    request = (
        "POST /api/v1/chat/completions HTTP/1.1\r\nHost: tunepipe\r\n"
        f"Authorization: Bearer {gateway.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {40_000_000}\r\n\r\n"
    ).encode()
    status, headers, body = raw_exchange(gateway.root, request)
    assert status == 413
    assert headers["connection"] == "close"
    assert headers["x-request-id"]
    error = httpx.Response(413, content=body).json()["error"]
    assert error["code"] == "request_too_large"
    assert str(32 * 1024 * 1024) in error["message"]


@dataclass
class Served:
    root: str
    fake: FakeProvider

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.root}/api/v1", headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        )


async def boom(_request: Request) -> Response:
    raise RuntimeError("a bug on purpose")


@pytest.fixture(scope="module")
def small(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app with a 64 KiB body limit and 4 KiB log bodies, plus a route that fails."""
    home: Path = tmp_path_factory.mktemp("limits")
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'limits.db'}",
        api_key=KEY,
        openai_base_url=f"{fake_provider.url}/v1",
        openai_api_key="sk-fake-openai",
        worker=False,
        default_model=False,
        max_request_bytes=SMALL_BODY_LIMIT,
        log_max_body_bytes=SMALL_LOG_LIMIT,
    )
    db = open_database(settings, migrate=True)
    db.run_sync(ensure_default_project, settings.api_key)
    db.dispose()
    app = create_app(settings)
    app.add_route("/boom", boom)  # this app only: the real one has no route that fails
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", http="httptools")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", fake_provider)
    finally:
        server.should_exit = True
        thread.join(30)


def test_body_size_chunked_over_limit_is_413_while_streaming(small: Served) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        nonlocal sent
        yield b'{"model":"gpt-4o","messages":[{"role":"user","content":"'
        for _ in range(10):
            sent += 8192
            yield b"x" * 8192
        yield b'"}]}'

    with small.http() as h:
        r = h.post("/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_envelope(r, 413, "request_too_large")
    assert r.headers["connection"] == "close"
    assert sent > SMALL_BODY_LIMIT
    # Under the limit the same route answers.
    with small.http() as h:
        ok = h.post(
            "/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert ok.status_code == 200, ok.text


def client_port(r: httpx.Response) -> int:
    return int(r.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_unexpected_error_500_keeps_the_connection_usable(small: Served) -> None:
    with httpx.Client(base_url=small.root, limits=httpx.Limits(max_connections=1)) as client:
        failed = client.get("/boom", headers={"x-request-id": "boom-1"})
        assert failed.status_code == 500
        assert failed.json()["error"]["type"] == "api_error"
        assert failed.headers["x-request-id"] == "boom-1"
        assert failed.headers.get("connection") != "close"
        after = client.get("/health")
        assert after.status_code == 200
        # The pooled connection was reused, not found dead and replaced.
        assert client_port(after) == client_port(failed)


def test_log_body_over_cap_is_stored_as_truncated_marker(small: Served) -> None:
    marker = uuid.uuid4().hex
    text = marker + " " + "word " * 2000  # ~10 kB, echoed back by the fake
    with small.http() as h:
        r = h.post(
            "/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
        )
        assert r.status_code == 200
        assert text in r.text  # the client gets the whole answer
        deadline = time.monotonic() + 10
        while not (found := h.get("/logs", params={"contains": marker}).json()["data"]):
            assert time.monotonic() < deadline, "the call was not logged"
            time.sleep(0.05)
        logged: dict[str, Any] = h.get(f"/logs/{found[0]['id']}").json()
    request, response = logged["reqPayload"], logged["respPayload"]
    for body in (request, response):
        assert body["_truncated"] is True
        assert body["bytes"] > SMALL_LOG_LIMIT
        assert len(body["head"]) <= SMALL_LOG_LIMIT
    assert request["head"].startswith("{")
    assert marker in request["head"]
    assert logged["statusCode"] == 200
    # A truncated row is not a chat call any more: a dataset import skips it.
    call = LoggedCall(
        id=logged["id"],
        requested_at=0,
        received_at=None,
        duration_ms=None,
        model="gpt-4o",
        status_code=200,
        error_message=None,
        input_tokens=None,
        output_tokens=None,
        cost=None,
        finish_reason=None,
        completion_id=None,
        cache_hit=False,
        source="gateway",
        streamed=False,
        metadata={},
        request=request,
        response=response,
    )
    with pytest.raises(EntryInvalid):
        entry_from_call(call)


def test_openapi_declares_400_and_413_for_every_request_body(small: Served) -> None:
    doc = httpx.get(f"{small.root}/openapi.json").json()
    with_body = [
        (p, m, op) for p, item in doc["paths"].items() for m, op in item.items() if "requestBody" in op
    ]
    assert len(with_body) > 50
    envelope = "#/components/schemas/ErrorResponse"
    for path, method, op in with_body:
        assert "422" not in op["responses"], (path, method)
        assert "400" in op["responses"], (path, method)
        too_large = op["responses"]["413"]["content"]["application/json"]["schema"]
        assert too_large == {"$ref": envelope}, (path, method)
    assert doc["paths"]["/api/v1/chat/completions"]["post"]["responses"]["400"]["content"][
        "application/json"
    ]["schema"] == {"$ref": envelope}
