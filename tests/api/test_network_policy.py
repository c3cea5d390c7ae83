"""URLs a project sets (external providers, provider-key base URLs) lead only where the
operator's network policy allows: refused when registered and again when called, in words that
say nothing of what answers where, and without the operator's key ever leaving for them.

Two servers share one database: ``strict`` runs with the default policy (public addresses
only), ``private`` with ``TUNEPIPE_UPSTREAM_ALLOW_PRIVATE=true``. What ``private`` registers,
``strict`` holds too, which is how a stored URL meets the check at call time.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from conftest import FakeProvider, _start, base_env, free_port
from fakes.provider import running_fake_provider

T = TypeVar("T")
MESSAGES = [{"role": "user", "content": "policy check"}]
NOT_ALLOWED = "upstream_not_allowed"


@dataclass
class Servers:
    strict: httpx.Client
    private: httpx.Client
    strict_port: int
    env: dict[str, str]
    capture: FakeProvider  # an upstream on loopback that records whatever reaches it


def _client(port: int, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


@pytest.fixture(scope="module")
def servers(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    home: Path = tmp_path_factory.mktemp("network-policy")
    env = base_env(home, fake_provider, None)
    env.pop("TUNEPIPE_UPSTREAM_ALLOW")  # the default policy: public addresses only
    env["TUNEPIPE_API_KEY"] = key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env["TUNEPIPE_WORKER"] = "false"
    strict_port, private_port = free_port(), free_port()
    procs = [_start(env, strict_port)]
    procs.append(_start({**env, "TUNEPIPE_UPSTREAM_ALLOW_PRIVATE": "true"}, private_port))
    clients = [_client(strict_port, key), _client(private_port, key)]
    try:
        with running_fake_provider() as capture_url:
            yield Servers(clients[0], clients[1], strict_port, env, FakeProvider(capture_url))
    finally:
        for client in clients:
            client.close()
        for proc in procs:
            proc.terminate()
            proc.wait(30)


def _eventually(fn: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 5.0) -> T:
    """``fn()`` once ``ok`` says so (another server sees a change after its next feed read)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _chat(h: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    return h.post("/chat/completions", json={"model": model, "messages": MESSAGES, **extra})


def _routed(h: httpx.Client, model: str) -> httpx.Response:
    """A call to ``model`` once this server knows it (a provider another server registered is
    seen after the next read of the change feed)."""
    return _eventually(lambda: _chat(h, model), lambda r: r.status_code != 404)


def _latest_mentioning(h: httpx.Client, marker: str) -> Any:
    """The project's latest logged call, once its request mentions ``marker``."""
    return _eventually(
        lambda: h.get("/local-testing-only-get-latest-logged-call").json(),
        lambda latest: bool(latest) and marker in json.dumps(latest["reqPayload"]),
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _targets(servers: Servers) -> list[str]:
    """Where a tenant would like the gateway to connect for it."""
    return [
        "http://127.0.0.1:5432/v1",  # the database
        "http://127.0.0.1:6379/v1",  # Redis
        f"http://localhost:{servers.strict_port}/api/v1",  # tunepipe itself, by name
        f"http://127.0.0.1:{servers.strict_port}/api/v1",
        "http://169.254.169.254/latest/meta-data",  # the cloud metadata service
        "http://[::1]:5432/v1",
        "http://[::ffff:127.0.0.1]:5432/v1",
        "http://0.0.0.0:5432/v1",
        "http://127.1:5432/v1",
        "http://10.0.0.1/v1",
        "http://192.168.1.1/v1",
        "http://100.64.0.1/v1",
        "http://[fd00::1]/v1",
        f"{servers.capture.url}/v1",
        "http://no-such-host.invalid/v1",  # a name that does not resolve reads the same
    ]


def test_network_policy_refuses_internal_targets_at_registration(servers: Servers) -> None:
    servers.capture.clear()
    messages = set()
    for target in _targets(servers):
        slug = f"ssrf-{uuid.uuid4().hex[:8]}"
        r = servers.strict.post("/external-providers", json={"slug": slug, "baseUrl": target})
        assert r.status_code == 400, (target, r.text)
        error = r.json()["error"]
        assert (error["code"], error["param"], error["type"]) == (
            NOT_ALLOWED,
            "baseUrl",
            "invalid_request_error",
        ), r.text
        messages.add(error["message"])
        for provider in ("openai", "anthropic", "gemini"):
            r = servers.strict.put(f"/provider-keys/{provider}", json={"baseUrl": target, "apiKey": "pk"})
            assert r.status_code == 400 and r.json()["error"]["code"] == NOT_ALLOWED, (provider, target)
            messages.add(r.json()["error"]["message"])
    # One wording for every target: the answer tells no port, address or name apart.
    assert len(messages) == 1, messages
    assert "TUNEPIPE_UPSTREAM_ALLOW" in messages.pop()
    assert servers.strict.get("/external-providers").json()["data"] == []
    assert servers.strict.get("/provider-keys").json()["data"] == []
    assert servers.capture.requests() == []  # nothing was connected to


def test_network_policy_allow_private_opts_in_and_strict_refuses_at_call_time(servers: Servers) -> None:
    servers.capture.clear()
    slug = f"vllm-{uuid.uuid4().hex[:8]}"
    by_name = f"vllm-name-{uuid.uuid4().hex[:8]}"
    port = servers.capture.url.rsplit(":", 1)[1]
    # The link-local metadata address stays refused even with private ranges allowed.
    r = servers.private.post(
        "/external-providers", json={"slug": slug, "baseUrl": "http://169.254.169.254/v1"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == NOT_ALLOWED
    r = servers.private.post(
        "/external-providers", json={"slug": slug, "baseUrl": f"{servers.capture.url}/v1"}
    )
    assert r.status_code == 201, r.text
    r = servers.private.post(
        "/external-providers", json={"slug": by_name, "baseUrl": f"http://localhost:{port}/v1"}
    )
    assert r.status_code == 201, r.text
    try:
        for model in (f"openpipe:{slug}/m", f"openpipe:{by_name}/m"):
            r = _chat(servers.private, model)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "echo: policy check"
        assert len(servers.capture.requests()) == 2
        servers.capture.clear()

        # Stored, but not where the strict server's policy allows: refused when called, the
        # literal address by the connect-time middleware, the name by the policy's resolver.
        for model, provider in ((f"openpipe:{slug}/m", slug), (f"openpipe:{by_name}/m", by_name)):
            r = _routed(servers.strict, model)
            assert r.status_code == 502, r.text
            error = r.json()["error"]
            assert error["message"] == f"Could not reach external provider {provider!r}"
            assert error["code"] == "upstream_unreachable"
            stream = _chat(servers.strict, model, stream=True)
            assert stream.status_code == 502 and stream.json()["error"]["code"] == "upstream_unreachable"
        assert servers.capture.requests() == []
    finally:
        servers.private.delete(f"/external-providers/{slug}")
        servers.private.delete(f"/external-providers/{by_name}")


def _cli(servers: Servers, *args: str, allow: str) -> subprocess.CompletedProcess[str]:
    """``tunepipe …`` on the server host, with the operator allowing ``allow``."""
    env = {**servers.env, "TUNEPIPE_UPSTREAM_ALLOW": allow}
    return subprocess.run(
        [sys.executable, "-m", "tunepipe", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_network_policy_call_time_failures_read_the_same(servers: Servers) -> None:
    """Refused by the policy, refused by a closed port, a name that does not resolve, the
    metadata address: one status, one code, one message (but for the provider's own name)."""
    slugs = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("closed", "loopback", "meta", "nowhere")}
    registered = [
        servers.private.post(
            "/external-providers",
            json={"slug": slugs["closed"], "baseUrl": f"http://127.0.0.1:{_closed_port()}/v1"},
        ),
        servers.private.post(
            "/external-providers", json={"slug": slugs["loopback"], "baseUrl": f"{servers.capture.url}/v1"}
        ),
    ]
    assert [r.status_code for r in registered] == [201, 201]
    # Stored by the operator's own command where it allows them, as a URL stored before the
    # policy tightened (or a name that has moved since) would be.
    for name, url, allow in (
        ("meta", "http://169.254.169.254/latest", "169.254.169.254"),
        ("nowhere", "http://no-such-host.invalid/v1", "*.invalid"),
    ):
        added = _cli(servers, "providers", "add", slugs[name], "--base-url", url, allow=allow)
        assert added.returncode == 0, added.stdout + added.stderr
    cases = [
        ("closed port", servers.private, "closed"),
        ("refused by policy", servers.strict, "loopback"),
        ("metadata address", servers.strict, "meta"),
        ("metadata address, private allowed", servers.private, "meta"),
        ("no such name", servers.strict, "nowhere"),
    ]
    seen = set()
    try:
        for case, client, name in cases:
            slug = slugs[name]
            _routed(client, f"openpipe:{slug}/m")
            started = time.monotonic()
            r = _chat(client, f"openpipe:{slug}/m")
            assert time.monotonic() - started < 2, case  # refused at once, never left to time out
            assert r.status_code == 502, (case, r.text)
            error = r.json()["error"]
            seen.add((error["message"].replace(slug, "<slug>"), error["code"], error["type"]))
    finally:
        for slug in slugs.values():
            servers.private.delete(f"/external-providers/{slug}")
    assert seen == {("Could not reach external provider '<slug>'", "upstream_unreachable", "api_error")}, seen
    assert servers.capture.requests() == []


def _header(request: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def test_network_policy_provider_key_base_url_never_gets_the_operator_key(
    servers: Servers, fake_provider: FakeProvider
) -> None:
    servers.capture.clear()
    openai_url, anthropic_url = f"{servers.capture.url}/v1", servers.capture.url
    r = servers.strict.put("/provider-keys/openai", json={"baseUrl": openai_url})
    assert r.status_code == 400 and r.json()["error"]["code"] == NOT_ALLOWED
    assert _chat(servers.strict, "gpt-4o").status_code == 200  # the operator's upstream, as configured
    # The operator's own URL is no tenant's choice: setting it is accepted anywhere.
    r = servers.strict.put(
        "/provider-keys/gemini", json={"baseUrl": f"{fake_provider.url}/v1/", "apiKey": "gk"}
    )
    assert r.status_code == 200, r.text
    assert servers.capture.requests() == []

    assert servers.private.put("/provider-keys/openai", json={"baseUrl": openai_url}).status_code == 200
    assert servers.private.put("/provider-keys/anthropic", json={"baseUrl": anthropic_url}).status_code == 200
    try:
        assert _chat(servers.private, "gpt-4o").status_code == 200
        messages = {"model": "anthropic:claude-3-5-haiku-latest", "max_tokens": 20, "messages": MESSAGES}
        assert servers.private.post("/messages", json=messages).status_code == 200
        seen = servers.capture.requests()
        assert [r["path"] for r in seen] == ["/v1/chat/completions", "/v1/messages"]
        # A URL the project chose gets the project's key or none, never the operator's.
        assert _header(seen[0], "Authorization") is None and _header(seen[1], "x-api-key") is None
        assert "sk-fake-openai" not in json.dumps(seen) and "ak-fake-anthropic" not in json.dumps(seen)
        servers.capture.clear()

        # The strict server holds the same settings and refuses them when called, on every
        # endpoint that goes to them.
        r = _eventually(lambda: _chat(servers.strict, "gpt-4o"), lambda r: r.status_code == 502)
        assert r.json()["error"] | {"param": None} == {
            "message": "Could not reach OpenAI",
            "type": "api_error",
            "param": None,
            "code": "upstream_unreachable",
        }
        r = servers.strict.post("/responses", json={"model": "gpt-4o", "input": "policy check"})
        assert r.status_code == 502 and r.json()["error"]["message"] == "Could not reach OpenAI", r.text
        r = _eventually(
            lambda: servers.strict.post("/messages", json=messages), lambda r: r.status_code == 502
        )
        assert r.status_code == 502, r.text
        assert "Could not reach" in r.text and "Connect" not in r.text
        assert servers.capture.requests() == []
    finally:
        for provider in ("openai", "anthropic", "gemini"):
            servers.private.delete(f"/provider-keys/{provider}")


class _LeakyUpstream(ThreadingHTTPServer):
    """An internal service that answers any POST with an HTML page full of its secrets."""

    daemon_threads = True

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        self.reply = (status, body, content_type)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                status, body, content_type = self.server.reply  # type: ignore[attr-defined]
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        super().__init__(("127.0.0.1", 0), Handler)


def test_network_policy_error_bodies_of_project_upstreams_are_not_reflected(servers: Servers) -> None:
    secret = b"<html><body>admin console: db password hunter2</body></html>"
    long_message = "y" * 3000
    cases = [
        (500, secret, "text/html", 502, "failed with HTTP 500: external provider"),
        (403, secret, "text/html", 403, "returned HTTP 403"),
        (400, json.dumps({"error": {"message": long_message}}).encode(), "application/json", 400, "y" * 200),
    ]
    for status, body, content_type, expected_status, expected in cases:
        upstream = _LeakyUpstream(status, body, content_type)
        thread = threading.Thread(target=upstream.serve_forever, daemon=True)
        thread.start()
        slug = f"leaky-{uuid.uuid4().hex[:8]}"
        try:
            r = servers.private.post(
                "/external-providers",
                json={"slug": slug, "baseUrl": f"http://127.0.0.1:{upstream.server_port}/v1"},
            )
            assert r.status_code == 201, r.text
            marker = f"leak-{uuid.uuid4().hex}"
            r = servers.private.post(
                "/chat/completions",
                json={"model": f"openpipe:{slug}/m", "messages": [{"role": "user", "content": marker}]},
            )
            assert r.status_code == expected_status, r.text
            assert "hunter2" not in r.text and expected in r.json()["error"]["message"], r.text
            assert long_message not in r.text
            logged = _latest_mentioning(servers.private, marker)
            assert marker in json.dumps(logged["reqPayload"])
            assert "hunter2" not in json.dumps(logged) and long_message not in json.dumps(logged)
        finally:
            servers.private.delete(f"/external-providers/{slug}")
            upstream.shutdown()
            upstream.server_close()
