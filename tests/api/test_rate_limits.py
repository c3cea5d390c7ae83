"""Rate limits per API key: requests and tokens per minute and requests in flight, set through
``PATCH /keys/{id}`` and ``tunepipe keys``. Over a limit a call is a 429 in the OpenAI envelope
with ``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers, and it is logged.

Each test makes a project of its own, so its keys (and their counters) are new. One server
process counts alone; ``tunepipe serve --workers 2`` shares the counters only through Redis, which
the last tests show by running the same calls with and without it.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest
import redis

from conftest import KEY_RE, FakeProvider, Gateway, _start, base_env, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Tenant:
    """A fresh project: its read/write key (the one limited) and its read-only key."""

    project: str
    key: str
    key_id: str
    read_only_key: str


def new_tenant(gateway: Gateway) -> Tenant:
    name = f"rl-{uuid.uuid4().hex[:10]}"
    out = gateway.cli("projects", "create", name).stdout
    rw, ro = KEY_RE.findall(out)
    with gateway.http(ro) as h:
        r = h.get("/keys")
    assert r.status_code == 200, r.text
    key_id = next(k["id"] for k in r.json()["data"] if rw.startswith(k["prefix"]))
    return Tenant(project=name, key=rw, key_id=key_id, read_only_key=ro)


@pytest.fixture
def tenant(gateway: Gateway) -> Tenant:
    return new_tenant(gateway)


def patch_limits(gateway: Gateway, tenant: Tenant, body: Any) -> httpx.Response:
    with gateway.http(tenant.key) as h:
        return h.patch(f"/keys/{tenant.key_id}", json=body)


def set_limits(gateway: Gateway, tenant: Tenant, **limits: int | None) -> dict[str, Any]:
    r = patch_limits(gateway, tenant, limits)
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view


def chat(
    gateway: Gateway, key: str, text: str = "hi", *, model: str = "gpt-4o", **headers: str
) -> httpx.Response:
    with gateway.http(key) as h:
        return h.post(
            "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": text}]},
            headers=headers,
        )


def ratelimit_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("x-ratelimit-")}


def assert_refused(r: httpx.Response, what: str) -> int:
    """A 429 in the OpenAI envelope naming the limit; its Retry-After."""
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert what in body["error"]["message"]
    assert body["message"] == body["error"]["message"]
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 60
    return retry_after


def wait_for_logged(gateway: Gateway, key: str, marker: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The logged call whose request mentions ``marker`` (logs are written in the background)."""
    deadline = time.monotonic() + timeout_s
    with gateway.http(key) as h:
        while True:
            r = h.get("/logs", params={"contains": marker, "bodies": "true"})
            assert r.status_code == 200, r.text
            if r.json()["data"]:
                row: dict[str, Any] = r.json()["data"][0]
                return row
            assert time.monotonic() < deadline, f"no call mentioning {marker} was logged"
            time.sleep(0.05)


# ---------------------------------------------------------------- one process


def test_rate_limit_rpm_refuses_the_call_over_the_limit(gateway: Gateway, tenant: Tenant) -> None:
    set_limits(gateway, tenant, rpm=3)
    for remaining in (2, 1, 0):
        r = chat(gateway, tenant.key)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-remaining-requests"] == str(remaining)
        # When the oldest call of the window leaves it: about a minute away.
        assert r.headers["x-ratelimit-reset-requests"] in {"1m0s", *(f"{s}s" for s in range(50, 60))}
    marker = f"refused-{uuid.uuid4().hex}"
    r = chat(gateway, tenant.key, marker)
    retry_after = assert_refused(r, "3 requests per minute")
    assert r.headers["x-ratelimit-limit-requests"] == "3"
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    assert retry_after >= 55  # the first of the three calls leaves the window in about a minute
    # The refused call is logged, with its status.
    row = wait_for_logged(gateway, tenant.key, marker)
    assert row["statusCode"] == 429
    assert "requests per minute" in row["errorMessage"]


def test_rate_limit_is_an_openai_rate_limit_error_in_the_sdk(gateway: Gateway, tenant: Tenant) -> None:
    set_limits(gateway, tenant, rpm=1)
    client = gateway.client(tenant.key)
    assert client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "b"}])
    assert exc.value.status_code == 429
    assert exc.value.code == "rate_limit_exceeded"
    assert int(exc.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError):  # a stream is refused before it starts
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "c"}], stream=True
        )


def test_rate_limit_tpm_counts_the_tokens_of_finished_calls(gateway: Gateway, tenant: Tenant) -> None:
    set_limits(gateway, tenant, tpm=20)
    # The fake provider counts words: 12 prompt tokens, 13 completion tokens ("echo: " + 12).
    r = chat(gateway, tenant.key, " ".join(f"w{i}" for i in range(12)))
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["total_tokens"] == 25
    assert r.headers["x-ratelimit-limit-tokens"] == "20"
    assert r.headers["x-ratelimit-remaining-tokens"] == "20"  # a call's tokens count when it ends
    r = chat(gateway, tenant.key)
    assert_refused(r, "20 tokens per minute")
    assert r.headers["x-ratelimit-limit-tokens"] == "20"
    assert r.headers["x-ratelimit-remaining-tokens"] == "0"
    assert r.headers["x-ratelimit-reset-tokens"].endswith("s")
    assert "x-ratelimit-limit-requests" not in r.headers  # no request limit: no request headers


def test_rate_limit_concurrency_refuses_a_second_call_in_flight(
    gateway: Gateway, tenant: Tenant, fake_provider: FakeProvider
) -> None:
    set_limits(gateway, tenant, max_concurrency=1)
    marker = f"slow-{uuid.uuid4().hex}"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(chat, gateway, tenant.key, marker, model="slow-1000")
        deadline = time.monotonic() + 5
        while not any(marker in json.dumps(r["body"]) for r in fake_provider.requests()):
            assert time.monotonic() < deadline, "the first call never reached the provider"
            time.sleep(0.02)
        # The first call is with the (slow) provider now.
        second = chat(gateway, tenant.key)
        assert assert_refused(second, "1 requests in flight") == 1
        assert first.result().status_code == 200
    assert chat(gateway, tenant.key).status_code == 200


class _GatedHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream that streams one chunk, then waits for the test's go."""

    server: _GatedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {
                "id": "chatcmpl-gated",
                "object": "chat.completion.chunk",
                "created": 0,
                "choices": [choice],
            }
            return b"data: " + json.dumps({**chunk, "model": "gated"}).encode() + b"\n\n"

        self.wfile.write(event({"role": "assistant", "content": "first"}))
        self.wfile.flush()
        self.server.release.wait(10)
        self.wfile.write(event({"content": " second"}) + event({}, "stop") + b"data: [DONE]\n\n")
        self.wfile.flush()


class _GatedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GatedHandler)
        self.release = threading.Event()


@pytest.fixture
def gated(gateway: Gateway, tenant: Tenant) -> Iterator[tuple[str, threading.Event]]:
    """The tenant's external provider whose stream stalls after its first chunk."""
    server = _GatedServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_port}/v1"
    with gateway.http(tenant.key) as h:
        r = h.post("/external-providers", json={"slug": "gated", "baseUrl": base_url})
        assert r.status_code == 201, r.text
    try:
        yield "openpipe:gated/gated", server.release
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def test_rate_limit_stream_holds_its_slot_until_it_ends(
    gateway: Gateway, tenant: Tenant, gated: tuple[str, threading.Event]
) -> None:
    model, release = gated
    set_limits(gateway, tenant, max_concurrency=1, rpm=100)
    body = {"model": model, "messages": [{"role": "user", "content": "go"}], "stream": True}
    with gateway.http(tenant.key) as h, h.stream("POST", "/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == "100"
        assert r.headers["x-ratelimit-remaining-requests"] == "99"
        lines = r.iter_lines()
        assert "first" in next(line for line in lines if line)
        # Its answer has started, and it is still in flight.
        assert_refused(chat(gateway, tenant.key), "1 requests in flight")
        release.set()
        assert [line for line in lines if line][-1] == "data: [DONE]"
    assert chat(gateway, tenant.key).status_code == 200


def test_rate_limit_headers_only_for_a_key_with_limits(gateway: Gateway, tenant: Tenant) -> None:
    r = chat(gateway, tenant.key)
    assert r.status_code == 200
    assert ratelimit_headers(r) == {}
    set_limits(gateway, tenant, rpm=50, tpm=10_000)
    r = chat(gateway, tenant.key)
    headers = ratelimit_headers(r)
    assert headers["x-ratelimit-limit-requests"] == "50"
    assert headers["x-ratelimit-remaining-requests"] == "49"
    assert headers["x-ratelimit-limit-tokens"] == "10000"
    assert int(headers["x-ratelimit-remaining-tokens"]) == 10_000
    assert {"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"} <= headers.keys()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "s"}], "stream": True}
    with gateway.http(tenant.key) as h, h.stream("POST", "/chat/completions", json=body) as streamed:
        assert streamed.headers["x-ratelimit-remaining-requests"] == "48"
        assert int(streamed.headers["x-ratelimit-remaining-tokens"]) < 10_000  # the first call's tokens
        assert streamed.headers["x-ratelimit-reset-tokens"] != "0ms"  # ... leave the window later
        streamed.read()
    # The project's other keys are not limited, and the default project's key has no headers.
    assert ratelimit_headers(chat(gateway, gateway.key)) == {}


def test_rate_limit_change_through_the_api_applies_at_once(gateway: Gateway, tenant: Tenant) -> None:
    assert chat(gateway, tenant.key).status_code == 200  # the server now remembers the key
    view = set_limits(gateway, tenant, rpm=1)
    assert view["limits"] == {"rpm": 1, "tpm": None, "max_concurrency": None}
    assert chat(gateway, tenant.key).status_code == 200
    assert_refused(chat(gateway, tenant.key), "1 requests per minute")
    # Raised: the window still holds the one admitted call (a refused one does not count).
    set_limits(gateway, tenant, rpm=3, tpm=100_000)
    for remaining in ("1", "0"):
        r = chat(gateway, tenant.key)
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == remaining
    assert_refused(chat(gateway, tenant.key), "3 requests per minute")
    # A limit left out stays; null removes one.
    view = set_limits(gateway, tenant, rpm=None)
    assert view["limits"] == {"rpm": None, "tpm": 100_000, "max_concurrency": None}
    r = chat(gateway, tenant.key)
    assert r.status_code == 200
    assert "x-ratelimit-limit-requests" not in r.headers
    assert r.headers["x-ratelimit-limit-tokens"] == "100000"
    set_limits(gateway, tenant, tpm=None)
    assert ratelimit_headers(chat(gateway, tenant.key)) == {}
    with gateway.http(tenant.key) as h:
        (listed,) = [k for k in h.get("/keys").json()["data"] if k["id"] == tenant.key_id]
    assert listed["limits"] == {"rpm": None, "tpm": None, "max_concurrency": None}


def test_rate_limit_counters_are_per_key(gateway: Gateway, tenant: Tenant) -> None:
    set_limits(gateway, tenant, rpm=1)
    assert chat(gateway, tenant.key).status_code == 200
    assert_refused(chat(gateway, tenant.key), "requests per minute")
    # Another key of the same project, made with limits of its own on the command line.
    out = gateway.cli("keys", "create", "--project", tenant.project, "--rpm", "2", "--max-concurrency", "4")
    assert "2 rpm, 4 concurrent" in out.stdout
    (other,) = KEY_RE.findall(out.stdout)
    for remaining in ("1", "0"):
        r = chat(gateway, other)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-remaining-requests"] == remaining
    assert_refused(chat(gateway, other), "2 requests per minute")
    # The read-only key of the project has no limit.
    r = chat(gateway, tenant.read_only_key, model="anthropic:claude-3-5-sonnet-20241022")
    assert r.status_code == 200, r.text
    assert ratelimit_headers(r) == {}


def test_rate_limit_cli_shows_and_changes_limits(gateway: Gateway, tenant: Tenant) -> None:
    prefix = tenant.key[:10]
    assert "Limits: none" in gateway.cli("keys", "limits", prefix).stdout
    out = gateway.cli("keys", "limits", f"{prefix}…", "--rpm", "1", "--tpm", "5000").stdout
    assert "Limits: 1 rpm, 5000 tpm" in out
    listed = subprocess.run(
        [sys.executable, "-m", "tunepipe", "keys", "list", "--project", tenant.project],
        env={**gateway.env, "COLUMNS": "250"},  # no wrapping
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{prefix}…" in listed and "1 rpm, 5000 tpm" in listed and tenant.key_id in listed
    # The server learns of a change made by another process through the change feed.
    deadline = time.monotonic() + 3
    while chat(gateway, tenant.key).headers.get("x-ratelimit-limit-requests") != "1":
        assert time.monotonic() < deadline, "the server never applied the limits set by the CLI"
        time.sleep(0.1)
    assert_refused(chat(gateway, tenant.key), "1 requests per minute")
    out = gateway.cli("keys", "limits", tenant.key_id, "--rpm", "0", "--project", tenant.project).stdout
    assert "Limits: 5000 tpm" in out
    missing = gateway.cli("keys", "limits", "opk_nothing", check=False)
    assert missing.returncode == 1 and "No API key" in missing.stdout


def test_rate_limit_keys_lists_the_project_keys_without_secrets(gateway: Gateway, tenant: Tenant) -> None:
    set_limits(gateway, tenant, max_concurrency=2)
    with gateway.http(tenant.read_only_key) as h:  # any key of the project may list
        r = h.get("/keys")
    assert r.status_code == 200, r.text
    keys = r.json()["data"]
    assert {k["name"]: k["read_only"] for k in keys} == {"read/write": False, "read-only": True}
    (limited,) = [k for k in keys if k["id"] == tenant.key_id]
    assert limited["object"] == "api_key"
    assert limited["prefix"] == tenant.key[:10]
    assert limited["limits"] == {"rpm": None, "tpm": None, "max_concurrency": 2}
    assert limited["created_at"].endswith("Z")
    assert tenant.key not in r.text and tenant.read_only_key not in r.text
    assert "hash" not in r.text


@pytest.mark.parametrize(
    "body",
    [
        {"rpm": 0},
        {"tpm": -5},
        {"rpm": 1.5},
        {"rpm": "10"},
        {"max_concurrency": True},
        {"rpm": 2**31},
        {"burst": 3},
        {},
        [],
        None,
    ],
)
def test_rate_limit_bad_patch_is_bad_request(gateway: Gateway, tenant: Tenant, body: Any) -> None:
    r = patch_limits(gateway, tenant, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    with gateway.http(tenant.key) as h:
        (listed,) = [k for k in h.get("/keys").json()["data"] if k["id"] == tenant.key_id]
    assert listed["limits"] == {"rpm": None, "tpm": None, "max_concurrency": None}


def test_rate_limit_key_of_another_project_is_not_found(gateway: Gateway, tenant: Tenant) -> None:
    other = new_tenant(gateway)
    for target in (other.key_id, other.key[:10], str(uuid.uuid4())):
        with gateway.http(tenant.key) as h:
            r = h.patch(f"/keys/{target}", json={"rpm": 1})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["type"] == "not_found_error"
    with gateway.http(other.key) as h:
        (listed,) = [k for k in h.get("/keys").json()["data"] if k["id"] == other.key_id]
        assert listed["limits"]["rpm"] is None
        assert tenant.key_id not in h.get("/keys").text


def test_rate_limit_read_only_key_cannot_change_limits(gateway: Gateway, tenant: Tenant) -> None:
    with gateway.http(tenant.read_only_key) as h:
        r = h.patch(f"/keys/{tenant.key_id}", json={"rpm": 1})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["type"] == "permission_error"
        r = h.patch(f"/keys/{tenant.key_id}", json={"rpm": 0})  # refused before the body is read
        assert r.status_code == 403, r.text
    assert ratelimit_headers(chat(gateway, tenant.key)) == {}


def test_rate_limit_failure_before_the_upstream_frees_the_slot(gateway: Gateway, tenant: Tenant) -> None:
    # Refused after admission, before any provider call (an unknown criterion): the slot is freed.
    set_limits(gateway, tenant, max_concurrency=1)
    r = chat(gateway, tenant.key, **{"op-criteria": '["no-such-criterion"]'})
    assert r.status_code == 404, r.text
    assert chat(gateway, tenant.key).status_code == 200


# ---------------------------------------------------------------- several processes


@dataclass
class Workers:
    counters: str  # redis | memory
    base_url: str
    key: str


@pytest.fixture(params=["redis", "memory"])
def two_workers(
    request: pytest.FixtureRequest, fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    """``tunepipe serve --workers 2`` whose key allows 4 requests a minute, counted in Redis or
    by each worker alone."""
    home = tmp_path_factory.mktemp(f"limits-{request.param}")
    env = base_env(home, fake_provider, None)
    env["TUNEPIPE_WORKER"] = "false"
    if request.param == "redis":
        redis.Redis.from_url(REDIS_URL).ping()  # the service must be there: fail, don't skip
        env["TUNEPIPE_REDIS_URL"] = REDIS_URL
    gateway = Gateway(backend="sqlite", root="", key="", read_only_key="", env=env, home=home)
    key = KEY_RE.findall(gateway.cli("projects", "create", "limited").stdout)[0]  # a new key id
    gateway.cli("keys", "limits", key[:10], "--rpm", "4")
    port = free_port()
    proc = _start(env, port, "--workers", "2")
    try:
        yield Workers(request.param, f"http://127.0.0.1:{port}/api/v1", key)
    finally:
        proc.terminate()
        proc.wait(30)


def _call_fresh(workers: Workers, i: int) -> int:
    """A call on a connection of its own, so that either worker may take it."""
    with httpx.Client(base_url=workers.base_url, timeout=30) as h:
        r = h.post(
            "/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": f"w{i}"}]},
            headers={"Authorization": f"Bearer {workers.key}", "Connection": "close"},
        )
        return r.status_code


def _calls_of_one_worker(workers: Workers) -> int:
    """The calls logged (admitted or refused) by whichever worker answers this request."""
    with httpx.Client(timeout=30) as h:
        r = h.get(workers.base_url.removesuffix("/api/v1") + "/health", headers={"Connection": "close"})
    return int(r.json()["logs"]["enqueued"])


def _statuses_spread_over_both_workers(workers: Workers) -> list[int]:
    """Statuses of calls made until both workers have taken some (the kernel, not tunepipe,
    picks the worker): one worker that logged some of them but not all proves it."""
    statuses: list[int] = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        while len(statuses) < 80:
            statuses += pool.map(lambda i: _call_fresh(workers, i), range(len(statuses), len(statuses) + 8))
            if 0 < _calls_of_one_worker(workers) < len(statuses):
                return statuses
    raise AssertionError(f"{len(statuses)} calls on fresh connections all went to one worker")


@pytest.mark.slow
def test_rate_limit_holds_across_workers_only_with_redis(two_workers: Workers) -> None:
    statuses = _statuses_spread_over_both_workers(two_workers)
    assert set(statuses) <= {200, 429} and len(statuses) >= 8, statuses
    if two_workers.counters == "redis":
        assert statuses.count(200) == 4 and 429 in statuses, statuses
    else:  # each worker counts alone: each admits up to 4, and both took calls (8 may all pass)
        assert 4 < statuses.count(200) <= 8, statuses
