"""The response cache (``op-cache``, spec B.8): modes, the key, streams, logging, expiry, clearing,
``/check-cache`` and the CLI, against both stores.

``store`` is a server on each database backend with the database store (the ``gateway``
fixture) and a server on the same database with ``TUNEPIPE_REDIS_URL`` set (the Redis store). The
fake provider records every upstream request, and each test asks about a marker text of its own,
so "the upstream was not called" is an exact count.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
from openpipe import OpenAI as OpenPipeOpenAI

from conftest import KEY_RE, FakeProvider, Gateway, _start, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
]


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def _body(text: str, model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def _upstream_calls(fake_provider: FakeProvider, marker: str) -> int:
    return sum(marker in json.dumps(r["body"]) for r in fake_provider.requests())


def _post(
    gw: Gateway, body: dict[str, Any], mode: str | None = "readWrite", key: str | None = None, **headers: str
) -> httpx.Response:
    if mode is not None:
        headers["op-cache"] = mode
    with gw.http(key) as h:
        return h.post("/chat/completions", json=body, headers=headers)


def _status(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return r.headers["op-cache-status"]


def _stream(gw: Gateway, body: dict[str, Any], mode: str = "readWrite") -> tuple[str, list[dict[str, Any]]]:
    """The cache status and the chunks of a streamed call, read as raw SSE."""
    with (
        gw.http() as h,
        h.stream("POST", "/chat/completions", json={**body, "stream": True}, headers={"op-cache": mode}) as r,
    ):
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return r.headers["op-cache-status"], [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def _content(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _start_with_redis(gw: Gateway) -> Gateway:
    """Another server on ``gw``'s database and project, keeping its cache in Redis."""
    env = {**gw.env, "TUNEPIPE_REDIS_URL": REDIS_URL, "TUNEPIPE_WORKER": "false"}
    port = free_port()
    proc = _start(env, port)
    root = f"http://127.0.0.1:{port}"
    return replace(gw, backend=f"{gw.backend}+redis", root=root, env=env, process=proc, extra={})


@pytest.fixture(scope="module")
def redis_gateways(gateway: Gateway) -> Iterator[tuple[Gateway, Gateway]]:
    """Two servers sharing one Redis (and ``gateway``'s database)."""
    redis.Redis.from_url(REDIS_URL).ping()  # the service must be there: fail, don't skip
    first = _start_with_redis(gateway)
    try:
        second = _start_with_redis(gateway)
    except BaseException:
        assert first.process is not None
        first.process.terminate()
        raise
    try:
        yield first, second
    finally:
        # Leave nothing behind in the shared Redis: every project this module made.
        for key in [gateway.key, *first.extra.get("keys", [])]:
            with first.http(key) as h:
                h.delete("/cache")
        for gw in (first, second):
            assert gw.process is not None
            gw.process.terminate()
            gw.process.wait(30)


@pytest.fixture(params=["database", "redis"])
def store(
    request: pytest.FixtureRequest, gateway: Gateway, redis_gateways: tuple[Gateway, Gateway]
) -> Gateway:
    return gateway if request.param == "database" else redis_gateways[0]


def _other_project(gw: Gateway) -> str:
    key = KEY_RE.findall(gw.cli("projects", "create", f"cache-{uuid.uuid4().hex[:8]}").stdout)[0]
    gw.extra.setdefault("keys", []).append(key)
    return str(key)


# ---------------------------------------------------------------- modes


def test_cache_read_write_serves_the_second_call_from_the_cache(
    store: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    first = _post(store, _body(m))
    assert _status(first) == "MISS"
    second = _post(store, _body(m))
    assert _status(second) == "HIT"
    assert second.json() == first.json()
    assert _upstream_calls(fake_provider, m) == 1
    # Without op-cache the cache is neither read nor written.
    assert _status(_post(store, _body(m), mode=None)) == "BYPASS"
    assert _upstream_calls(fake_provider, m) == 2


def test_cache_read_only_never_stores(store: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    assert _status(_post(store, _body(m), "readOnly")) == "MISS"
    assert _status(_post(store, _body(m), "readOnly")) == "MISS"
    assert _upstream_calls(fake_provider, m) == 2
    stored = _post(store, _body(m), "readWrite")
    assert _status(stored) == "MISS"
    hit = _post(store, _body(m), "readOnly")
    assert _status(hit) == "HIT"
    assert hit.json()["id"] == stored.json()["id"]
    assert _upstream_calls(fake_provider, m) == 3


def test_cache_write_only_always_calls_and_overwrites(store: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    old = _post(store, _body(m))
    assert _status(old) == "MISS"
    new = _post(store, _body(m), "writeOnly")
    assert _status(new) == "WRITE"
    assert new.json()["id"] != old.json()["id"]
    assert _upstream_calls(fake_provider, m) == 2
    hit = _post(store, _body(m), "readOnly")
    assert _status(hit) == "HIT"
    assert hit.json()["id"] == new.json()["id"]
    assert _upstream_calls(fake_provider, m) == 2


def test_cache_legacy_true_reads_and_writes(store: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    assert _status(_post(store, _body(m), "true")) == "MISS"
    assert _status(_post(store, _body(m), "true")) == "HIT"
    # What the openpipe SDK sends for a non-string cache option: no caching.
    assert _status(_post(store, _body(m), "false")) == "BYPASS"
    assert _upstream_calls(fake_provider, m) == 2


def test_cache_openpipe_sdk_cache_option(gateway: Gateway, fake_provider: FakeProvider) -> None:
    client = OpenPipeOpenAI(
        api_key="x", max_retries=0, openpipe={"api_key": gateway.key, "base_url": gateway.base_url}
    )
    m = _marker()
    messages: Any = [{"role": "user", "content": m}]
    first = client.chat.completions.create(
        model="openai:gpt-4o-mini", messages=messages, openpipe={"cache": "readWrite"}
    )
    second = client.chat.completions.create(
        model="openai:gpt-4o-mini", messages=messages, openpipe={"cache": "readWrite"}
    )
    assert second.id == first.id
    assert second.choices[0].message.content == f"echo: {m}"
    assert _upstream_calls(fake_provider, m) == 1
    assert sorted(c["cacheHit"] for c in _logs(gateway, m, 2)) == [False, True]


# ---------------------------------------------------------------- the key


def test_cache_key_includes_every_field_that_changes_the_answer(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    assert _status(_post(gateway, _body(m))) == "MISS"
    variants: list[dict[str, Any]] = [
        {"temperature": 0.5},
        {"n": 2},
        {"max_tokens": 5},
        {"tools": TOOLS},
        {"tools": TOOLS, "tool_choice": "none"},
        {"stop": ["x"]},
        {"seed": 7},
        {"top_p": 0.5},
        {"response_format": {"type": "json_object"}},
    ]
    for extra in variants:
        assert _status(_post(gateway, _body(m, **extra))) == "MISS", extra
        assert _status(_post(gateway, _body(m, **extra))) == "HIT", extra
    assert _status(_post(gateway, _body(m, model="gpt-4o-mini"))) == "MISS"
    assert _upstream_calls(fake_provider, m) == len(variants) + 2


def test_cache_key_ignores_labels_user_and_streaming(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    stored = _post(gateway, _body(f"alpha beta {m}", metadata={"run": "1"}))
    assert _status(stored) == "MISS"
    for extra in ({"metadata": {"run": "2"}}, {"user": "someone"}, {"store": False}, {}):
        assert _status(_post(gateway, _body(f"alpha beta {m}", **extra))) == "HIT", extra
    # Stored from a plain call, served to the same request streamed.
    status, chunks = _stream(gateway, _body(f"alpha beta {m}", stream_options={"include_usage": False}))
    assert status == "HIT"
    assert _content(chunks) == stored.json()["choices"][0]["message"]["content"]
    assert _upstream_calls(fake_provider, m) == 1


# ---------------------------------------------------------------- streams


def test_cache_stream_hit_is_replayed_chunk_by_chunk(store: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    body = _body(f"one two three four {m}", stream_options={"include_usage": True})
    status, live = _stream(store, body)
    assert status == "MISS"
    usage = live[-1]["usage"]
    assert live[-1]["choices"] == [] and usage["total_tokens"] > 0

    status, replayed = _stream(store, body)
    assert status == "HIT"
    assert _content(replayed) == _content(live) == f"echo: one two three four {m}"
    assert replayed[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert sum(bool(c["choices"] and c["choices"][0]["delta"].get("content")) for c in replayed) >= 6
    finish = replayed[-2]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] == "stop"
    assert replayed[-1]["choices"] == [] and replayed[-1]["usage"] == usage
    assert all(c["usage"] is None for c in replayed[:-1])
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == live[0]["id"] for c in replayed)

    # Usage only when asked for, as for a live stream.
    status, quiet = _stream(store, {**body, "stream_options": {"include_usage": False}})
    assert status == "HIT"
    assert all(c["choices"] and "usage" not in c for c in quiet)
    # The assembled stream answers a plain call too.
    plain = _post(store, {k: v for k, v in body.items() if k != "stream_options"})
    assert _status(plain) == "HIT"
    assert plain.json()["choices"][0]["message"]["content"] == f"echo: one two three four {m}"
    assert plain.json()["usage"] == usage
    assert _upstream_calls(fake_provider, m) == 1


def test_cache_stream_hit_replays_tool_call_deltas(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    body = _body(f"find the weather in Paris {m}", tools=TOOLS)
    original = _post(gateway, body)
    assert _status(original) == "MISS"
    call = original.json()["choices"][0]["message"]["tool_calls"][0]

    stream = gateway.client().chat.completions.create(
        **body, stream=True, extra_headers={"op-cache": "readOnly"}
    )
    chunks = list(stream)
    deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert len(deltas) > 2  # the opening (id and name), then the arguments in pieces
    assert deltas[0].id == call["id"] and deltas[0].function and deltas[0].function.name == "lookup"
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == call["function"]["arguments"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert _upstream_calls(fake_provider, m) == 1


# ---------------------------------------------------------------- logging, failures, expiry


def _logs(gw: Gateway, marker: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    with gw.http() as h:
        while True:
            data = h.get("/logs", params={"contains": marker, "bodies": "true"}).json()["data"]
            if len(data) >= count:
                return list(data)
            assert time.monotonic() < deadline, data
            time.sleep(0.05)


def test_cache_hit_is_logged_as_a_hit_at_no_cost(store: Gateway) -> None:
    m = _marker()
    _post(store, _body(m))
    _post(store, _body(m))
    _stream(store, _body(m))
    logs = _logs(store, m, 3)
    original = next(c for c in logs if not c["cacheHit"])
    hits = [c for c in logs if c["cacheHit"]]
    assert len(hits) == 2
    assert original["cost"] > 0
    for hit in hits:
        assert hit["statusCode"] == 200
        assert hit["cost"] == 0
        assert (hit["inputTokens"], hit["outputTokens"]) == (
            original["inputTokens"],
            original["outputTokens"],
        )
        assert hit["respPayload"]["choices"][0]["message"]["content"] == f"echo: {m}"
    assert {h["streamed"] for h in hits} == {True, False}


def test_cache_failed_answer_is_not_stored(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    assert _post(gateway, _body(m, model="fail-500")).status_code == 502
    calls = _upstream_calls(fake_provider, m)
    assert calls >= 1
    failed = _post(gateway, _body(m, model="fail-500"))
    assert failed.status_code == 502
    assert failed.headers.get("op-cache-status") != "HIT"
    assert _upstream_calls(fake_provider, m) > calls


def test_cache_ttl_header_expires_the_answer(store: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    assert _status(_post(store, _body(m), **{"op-cache-ttl": "1"})) == "MISS"
    assert _status(_post(store, _body(m), "readOnly")) == "HIT"
    time.sleep(1.2)
    assert _status(_post(store, _body(m), "readOnly")) == "MISS"
    assert _upstream_calls(fake_provider, m) == 2


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"op-cache": "always"}, "op-cache"),
        ({"op-cache": "readWrite", "op-cache-ttl": "soon"}, "op-cache-ttl"),
        ({"op-cache": "readWrite", "op-cache-ttl": "0"}, "op-cache-ttl"),
    ],
)
def test_cache_bad_header_is_a_400_naming_it(
    gateway: Gateway, fake_provider: FakeProvider, headers: dict[str, str], param: str
) -> None:
    m = _marker()
    r = _post(gateway, _body(m), mode=None, **headers)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param
    assert param in r.json()["error"]["message"]
    assert r.json()["code"] == "BAD_REQUEST"
    assert _upstream_calls(fake_provider, m) == 0


# ---------------------------------------------------------------- clearing, stats, check-cache


def test_cache_delete_by_model_then_all(store: Gateway) -> None:
    m = _marker()
    one, two = f"gpt-one-{m}", f"gpt-two-{m}"
    for model, text in ((one, "a"), (one, "b"), (two, "a")):
        assert _status(_post(store, _body(text, model=model))) == "MISS"
    with store.http() as h:
        stats = {s["model"]: s for s in h.get("/cache").json()["data"]}
        assert stats[one]["entries"] == 2 and stats[one]["bytes"] > 0
        assert stats[two]["entries"] == 1
        with store.http(store.read_only_key) as ro:
            assert ro.get("/cache").status_code == 200
            assert ro.delete("/cache").status_code == 403
        assert h.delete("/cache", params={"model": one}).json() == {"deleted": 2}
        assert _status(_post(store, _body("a", model=one), "readOnly")) == "MISS"
        assert _status(_post(store, _body("a", model=two), "readOnly")) == "HIT"
        assert h.delete("/cache").json()["deleted"] >= 1
        assert _status(_post(store, _body("a", model=two), "readOnly")) == "MISS"
        assert h.get("/cache").json() == {"object": "list", "data": []}


def test_cache_cli_stats_and_clear(store: Gateway) -> None:
    model = f"gpt-cli-{uuid.uuid4().hex[:6]}"
    assert _status(_post(store, _body("x", model=model))) == "MISS"
    stats = store.cli("cache", "stats").stdout
    assert model in stats
    out = store.cli("cache", "clear", "--model", model).stdout
    assert "1 cached answers" in out
    assert _status(_post(store, _body("x", model=model), "readOnly")) == "MISS"
    assert model not in store.cli("cache", "stats").stdout


def test_check_cache_answers_from_the_cache(store: Gateway) -> None:
    m = _marker()
    body = _body(m, temperature=0)

    def check(payload: Any) -> httpx.Response:
        with store.http() as h:
            return h.post(
                "/check-cache", json={"requestedAt": int(time.time() * 1000), "reqPayload": payload}
            )

    assert check(body).json() == {"respPayload": None}
    stored = _post(store, body).json()
    assert check(body).json() == {"respPayload": stored}
    assert check({**body, "metadata": {"a": "b"}}).json() == {"respPayload": stored}
    assert check({**body, "temperature": 1}).json() == {"respPayload": None}
    for bad in ("not a request", {"messages": body["messages"]}):
        r = check(bad)
        assert r.status_code == 400 and r.json()["error"]["param"] == "reqPayload"
    assert check({**body, "model": "openpipe:no-such-model"}).status_code == 404
    assert check(None).json() == {"respPayload": None}  # optional in OpenPipe's schema


def test_cache_is_per_project(store: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    other = _other_project(store)
    assert _status(_post(store, _body(m))) == "MISS"
    assert _status(_post(store, _body(m), key=other)) == "MISS"
    assert _status(_post(store, _body(m), key=other)) == "HIT"
    assert _upstream_calls(fake_provider, m) == 2
    with store.http(other) as h:
        assert h.delete("/cache").json() == {"deleted": 1}
    assert _status(_post(store, _body(m), "readOnly")) == "HIT"


def test_cache_is_shared_by_servers_on_one_redis(
    gateway: Gateway, redis_gateways: tuple[Gateway, Gateway], fake_provider: FakeProvider
) -> None:
    first, second = redis_gateways
    m = _marker()
    assert _status(_post(first, _body(m))) == "MISS"
    hit = _post(second, _body(m))
    assert _status(hit) == "HIT"
    assert hit.json()["choices"][0]["message"]["content"] == f"echo: {m}"
    assert _upstream_calls(fake_provider, m) == 1
    # The answer is in Redis, not in the database all three servers share.
    assert _status(_post(gateway, _body(m), "readOnly")) == "MISS"
    with second.http() as h:
        assert h.delete("/cache", params={"model": "gpt-4o"}).json()["deleted"] >= 1
    assert _status(_post(first, _body(m), "readOnly")) == "MISS"
