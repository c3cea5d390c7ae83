"""``x-request-id``: on every response (errors and streams too), the client's own when usable,
else a generated one, and kept on the call's log row."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from conftest import Gateway
from tunepipe.api import errors, middleware
from tunepipe.domain.request_context import current_request_id, usable_request_id
from tunepipe.settings import Settings

GENERATED = re.compile(r"req_[0-9a-f]{32}")


def logged(gateway: Gateway, marker: str) -> dict[str, Any]:
    """The project's logged call whose request mentions ``marker``, as ``GET /logs`` shows it."""
    gateway.wait_for_log(marker)
    with gateway.http() as h:
        r = h.get("/logs", params={"contains": marker})
    assert r.status_code == 200, r.text
    [call] = r.json()["data"]
    return dict(call)


def chat_body(marker: str, **extra: object) -> dict[str, object]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": marker}], **extra}


def test_request_id_client_id_echoed_and_logged(gateway: Gateway) -> None:
    marker = uuid.uuid4().hex
    mine = f"client-{marker}"
    with gateway.client() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": marker}],
            extra_headers={"x-request-id": mine},
        )
    assert raw.headers["x-request-id"] == mine
    assert raw.parse().choices[0].message.content
    assert logged(gateway, marker)["requestId"] == mine


def test_request_id_generated_when_absent_and_logged(gateway: Gateway) -> None:
    marker = uuid.uuid4().hex
    with gateway.http() as h:
        first = h.post("/chat/completions", json=chat_body(marker))
        second = h.get("/logs")
    assert first.status_code == 200, first.text
    rid = first.headers["x-request-id"]
    assert GENERATED.fullmatch(rid)
    assert GENERATED.fullmatch(second.headers["x-request-id"])
    assert second.headers["x-request-id"] != rid
    assert logged(gateway, marker)["requestId"] == rid


@pytest.mark.parametrize(
    "unusable",
    [b"x" * 201, b"tab\there", "ünïcode".encode()],
    ids=["too-long", "control-char", "non-ascii"],
)
def test_request_id_unusable_client_id_replaced(gateway: Gateway, unusable: bytes) -> None:
    with gateway.http() as h:
        r = h.get("/logs", headers={b"x-request-id": unusable})
    assert r.status_code == 200
    assert GENERATED.fullmatch(r.headers["x-request-id"])


def test_request_id_longest_usable_client_id_kept(gateway: Gateway) -> None:
    mine = "a" * 199 + "z"
    with gateway.http() as h:
        r = h.get("/logs", headers={"x-request-id": mine})
    assert r.headers["x-request-id"] == mine


def test_request_id_on_errors(gateway: Gateway) -> None:
    with gateway.http() as h:
        bad_json = h.post("/chat/completions", content=b"{not json", headers={"x-request-id": "bad-json"})
        unknown = h.get("/no-such-route", headers={"x-request-id": "unknown-route"})
        upstream = h.post("/chat/completions", json=chat_body("x", model="fail-503"))
    with gateway.http("opk_" + "0" * 42) as h:
        unauthorised = h.get("/logs", headers={"x-request-id": "bad-key"})
    assert (bad_json.status_code, bad_json.headers["x-request-id"]) == (400, "bad-json")
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    assert (unknown.status_code, unknown.headers["x-request-id"]) == (404, "unknown-route")
    assert (unauthorised.status_code, unauthorised.headers["x-request-id"]) == (401, "bad-key")
    assert upstream.status_code >= 500
    assert GENERATED.fullmatch(upstream.headers["x-request-id"])


def test_request_id_failed_call_logged_with_it(gateway: Gateway) -> None:
    marker = uuid.uuid4().hex
    with gateway.http() as h:
        r = h.post(
            "/chat/completions",
            json=chat_body(marker, model="fail-429"),
            headers={"x-request-id": f"failed-{marker}"},
        )
    assert r.status_code == 429
    call = logged(gateway, marker)
    assert call["statusCode"] == 429
    assert call["requestId"] == f"failed-{marker}"


def test_request_id_kept_on_reported_calls(gateway: Gateway) -> None:
    marker = uuid.uuid4().hex
    with gateway.http() as h:
        r = h.post(
            "/report",
            json={"reqPayload": chat_body(marker), "respPayload": None, "statusCode": 200},
            headers={"x-request-id": f"report-{marker}"},
        )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == f"report-{marker}"
    assert logged(gateway, marker)["requestId"] == f"report-{marker}"


def test_request_id_on_streams(gateway: Gateway) -> None:
    marker = uuid.uuid4().hex
    with (
        gateway.client() as client,
        client.chat.completions.with_streaming_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": marker}],
            stream=True,
            extra_headers={"x-request-id": f"stream-{marker}"},
        ) as response,
    ):
        assert response.headers["x-request-id"] == f"stream-{marker}"
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    call = logged(gateway, marker)
    assert call["requestId"] == f"stream-{marker}"
    assert call["streamed"] is True


def test_request_id_on_system_routes(gateway: Gateway) -> None:
    health = httpx.get(f"{gateway.root}/health", headers={"x-request-id": "probe-1"})
    scrape = httpx.get(f"{gateway.root}/metrics")
    assert health.headers["x-request-id"] == "probe-1"
    assert GENERATED.fullmatch(scrape.headers["x-request-id"])


async def test_request_id_on_unhandled_exception_and_visible_to_handlers(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def ok(_request: Request) -> Response:
        seen.append(current_request_id())
        return Response("ok")

    async def broken(_request: Request) -> Response:
        raise RuntimeError("a bug")

    # Built as create_app builds the real one: the error handlers, then the middleware.
    app = FastAPI()
    errors.install(app)
    middleware.install(app, Settings(home=tmp_path))
    app.add_route("/ok", ok)
    app.add_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tp") as client:
        r = await client.get("/broken", headers={"x-request-id": "boom-1"})
        fine = await client.get("/ok", headers={"x-request-id": "fine-1"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "boom-1"
    assert r.json()["error"]["type"] == "api_error"
    assert fine.headers["x-request-id"] == "fine-1"
    assert seen == ["fine-1"]
    assert current_request_id() is None  # reset once the request is over


def test_usable_request_id_rules() -> None:
    assert usable_request_id("abc-123_XYZ.:/=+") == "abc-123_XYZ.:/=+"
    assert usable_request_id("inner spaces ok") == "inner spaces ok"
    assert usable_request_id(b"bytes-ok") == "bytes-ok"
    assert usable_request_id("") is None
    assert usable_request_id("trailing ") is None
    assert usable_request_id(b"\xff\xfe") is None
    assert usable_request_id("new\nline") is None
    assert usable_request_id("x" * 200) == "x" * 200
    assert usable_request_id("x" * 201) is None
    assert usable_request_id(None) is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/embeddings", {"model": "text-embedding-3-small", "input": "{marker}"}),
        ("/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "{marker}", "max_tokens": 5}),
    ],
)
def test_request_id_logged_for_embeddings_and_legacy_completions(
    gateway: Gateway, path: str, body: dict[str, Any]
) -> None:
    marker = uuid.uuid4().hex
    sent = {k: v.format(marker=marker) if isinstance(v, str) else v for k, v in body.items()}
    with gateway.http() as h:
        r = h.post(path, json=sent, headers={"x-request-id": f"{path[1:]}-{marker}"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == f"{path[1:]}-{marker}"
    call = logged(gateway, marker)
    assert call["requestId"] == f"{path[1:]}-{marker}" and call["endpoint"] == path[1:]
