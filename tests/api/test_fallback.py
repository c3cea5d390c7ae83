"""Retries, fallbacks and the circuit breaker on both backends, against the fake provider's
failing models: what is retried (429, 5xx) and what is not (other 4xx), Retry-After, header and
project-default chains, streams falling back only before their first content, the log and the
response headers saying who answered after how many tries, the breaker skipping a model that
keeps failing, the routing API and CLI, and the openpipe SDK's own client-side fallback."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from openpipe import OpenAI as OpenPipeOpenAI

from conftest import KEY_RE, FakeProvider, Gateway


def tag() -> str:
    return uuid.uuid4().hex[:10]


def post(gateway: Gateway, model: str, text: str, key: str | None = None, **headers: str) -> httpx.Response:
    with gateway.http(key) as h:
        return h.post(
            "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": text}]},
            headers=headers,
        )


def upstream_models(fake: FakeProvider, text: str) -> list[str]:
    return [r["body"]["model"] for r in fake.requests() if text in json.dumps(r["body"].get("messages"))]


def logged(gateway: Gateway, text: str, key: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    with gateway.http(key) as h:
        while True:
            found = h.get("/logs", params={"bodies": "true", "contains": text}).json()["data"]
            if found:
                return dict(found[0])
            assert time.monotonic() < deadline, f"no log for {text}"
            time.sleep(0.05)


def new_project(gateway: Gateway) -> str:
    return str(KEY_RE.findall(gateway.cli("projects", "create", f"route-{tag()}").stdout)[0])


def test_retries_recover_from_5xx_and_say_so(gateway: Gateway, fake_provider: FakeProvider) -> None:
    text = f"retry {tag()}"
    r = post(gateway, "flaky-2-503", text, **{"op-retries": "2"})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == f"echo: {text}"
    assert (r.headers["op-model"], r.headers["op-attempts"]) == ("flaky-2-503", "3")
    assert upstream_models(fake_provider, text) == ["flaky-2-503"] * 3
    log = logged(gateway, text)
    assert (log["statusCode"], log["answeredBy"], log["attemptCount"]) == (200, "flaky-2-503", 3)
    assert [a["status"] for a in log["attempts"]] == [503, 503, 200]
    # Too few retries: the provider's failure is the answer (a 5xx becomes a 502).
    text = f"short {tag()}"
    r = post(gateway, "flaky-3-503", text, **{"op-retries": "1"})
    assert r.status_code == 502 and "flaky failure 2 of 3" in r.json()["message"]
    assert logged(gateway, text)["attempts"][-1]["status"] == 503


def test_retry_waits_what_the_provider_asks(gateway: Gateway) -> None:
    text = f"throttled {tag()}"
    started = time.monotonic()
    r = post(gateway, "flaky-1-429", text, **{"op-retries": "1"})
    assert r.status_code == 200 and r.headers["op-attempts"] == "2"
    assert time.monotonic() - started >= 0.1  # retry-after-ms: 100


def test_client_errors_are_neither_retried_nor_fallen_back(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    text = f"bad {tag()}"
    r = post(gateway, "fail-400", text, **{"op-retries": "3", "op-fallback": '["gpt-4o-mini"]'})
    assert r.status_code == 400 and r.json()["message"] == "fake failure 400"
    assert upstream_models(fake_provider, text) == ["fail-400"]


def test_fallback_answers_when_the_model_fails(gateway: Gateway, fake_provider: FakeProvider) -> None:
    key = new_project(gateway)  # its own project: no earlier failure has tripped its breaker
    text = f"fallback {tag()}"
    r = post(gateway, "fail-503", text, key, **{"op-fallback": '["fail-502", "gpt-4o-mini"]'})
    assert r.status_code == 200, r.text
    assert (r.headers["op-model"], r.headers["op-attempts"]) == ("gpt-4o-mini", "3")
    assert upstream_models(fake_provider, text) == ["fail-503", "fail-502", "gpt-4o-mini"]
    log = logged(gateway, text, key)
    assert (log["model"], log["answeredBy"], log["attemptCount"]) == ("fail-503", "gpt-4o-mini", 3)
    assert [(a["model"], a["status"]) for a in log["attempts"]] == [
        ("fail-503", 503),
        ("fail-502", 502),
        ("gpt-4o-mini", 200),
    ]
    # An unroutable fallback is skipped, not fatal; an unknown requested model is the caller's 404.
    r = post(gateway, "fail-503", f"skip {tag()}", key, **{"op-fallback": '["openpipe:nope", "gpt-4o-mini"]'})
    assert r.status_code == 200 and r.headers["op-attempts"] == "3"
    r = post(gateway, "openpipe:nope", f"unknown {tag()}", **{"op-fallback": '["gpt-4o-mini"]'})
    assert r.status_code == 404
    for bad in ("[1]", "not json", '{"a": 1}'):
        r = post(gateway, "gpt-4o-mini", "x", **{"op-fallback": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "op-fallback"
    r = post(gateway, "gpt-4o-mini", "x", **{"op-retries": "9"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "op-retries"


def test_a_stream_falls_back_only_before_its_first_content(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    key = new_project(gateway)  # its own project: no earlier failure has tripped its breaker
    client = gateway.client(key)
    text = f"stream {tag()}"
    stream = client.chat.completions.create(
        model="fail-503",
        messages=[{"role": "user", "content": text}],
        stream=True,
        extra_headers={"op-fallback": '["gpt-4o-mini"]'},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == f"echo: {text}"
    assert upstream_models(fake_provider, text) == ["fail-503", "gpt-4o-mini"]
    # Broken after content was sent: the client gets the error, no other model is asked.
    text = f"midstream {tag()}"
    stream = client.chat.completions.create(
        model="fail-midstream",
        messages=[{"role": "user", "content": text}],
        stream=True,
        extra_headers={"op-fallback": '["gpt-4o-mini"]'},
    )
    with pytest.raises(openai.APIError, match="upstream exploded"):
        for _ in stream:
            pass
    assert upstream_models(fake_provider, text) == ["fail-midstream"]
    log = logged(gateway, text, key)
    assert log["statusCode"] == 502 and log["errorMessage"].startswith("fail-midstream broke off")


def test_project_default_chain_and_headers_that_override_it(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    key = new_project(gateway)
    with gateway.http(key) as h:
        r = h.put("/routing/fallbacks/fail-500", json={"fallbacks": ["gpt-4o-mini"], "retries": 1})
        assert r.status_code == 200 and r.json() == {
            "model": "fail-500",
            "fallbacks": ["gpt-4o-mini"],
            "retries": 1,
        }
        bad = h.put("/routing/fallbacks/fail-500", json={"fallbacks": ["openpipe:ghost"]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "fallbacks[0]"
        assert h.put("/routing/fallbacks/fail-500", json={"retries": 9}).status_code == 400
        assert h.put("/routing/fallbacks/openpipe:prov/model", json={"fallbacks": []}).status_code == 400
    text = f"default {tag()}"
    r = post(gateway, "fail-500", text, key)
    assert r.status_code == 200 and r.headers["op-model"] == "gpt-4o-mini"
    assert upstream_models(fake_provider, text) == ["fail-500", "fail-500", "gpt-4o-mini"]  # 1 retry first
    text = f"override {tag()}"
    r = post(gateway, "fail-500", text, key, **{"op-fallback": "[]", "op-retries": "0"})
    assert r.status_code == 502 and upstream_models(fake_provider, text) == ["fail-500"]
    with gateway.http(gateway.read_only_key) as h:
        assert h.put("/routing/fallbacks/x", json={"fallbacks": []}).status_code == 403
    with gateway.http() as h:  # another project sees none of it
        assert "fail-500" not in json.dumps(h.get("/routing").json()["fallbacks"])
        assert h.delete("/routing/fallbacks/fail-500").status_code == 404
    with gateway.http(key) as h:
        assert h.delete("/routing/fallbacks/fail-500").json()["deleted"] is True
        assert h.get("/routing").json()["fallbacks"] == []


def test_the_breaker_skips_a_model_that_keeps_failing(gateway: Gateway, fake_provider: FakeProvider) -> None:
    key = new_project(gateway)  # the breaker's state is per project: a fresh one starts closed
    chain = {"op-fallback": '["gpt-4o-mini"]'}
    for _ in range(3):
        assert post(gateway, "fail-504", f"trip {tag()}", key, **chain).status_code == 200
    text = f"skipped {tag()}"
    r = post(gateway, "fail-504", text, key, **chain)
    assert r.status_code == 200 and upstream_models(fake_provider, text) == ["gpt-4o-mini"]
    log = logged(gateway, text, key)
    assert log["attempts"][0]["model"] == "fail-504" and "cooling down" in log["attempts"][0]["error"]
    with gateway.http(key) as h:
        (state,) = h.get("/routing").json()["models"]
    assert state["model"] == "fail-504" and state["state"] == "cooling" and state["consecutive_failures"] == 3
    assert 0 < state["cooldown_remaining_s"] <= 5
    # Alone (no fallback), a cooling model is still tried: something must answer.
    text = f"alone {tag()}"
    assert post(gateway, "fail-504", text, key).status_code == 502
    assert upstream_models(fake_provider, text) == ["fail-504"]
    with gateway.http() as h:
        assert h.get("/routing").json()["models"] == [] or "fail-504" not in json.dumps(
            h.get("/routing").json()
        )


def test_routing_cli_sets_shows_and_removes_chains(gateway: Gateway) -> None:
    name = f"cli-{tag()}"
    gateway.cli("projects", "create", name)
    out = gateway.cli(
        "routing", "set", "fail-500", "-f", "gpt-4o-mini", "-f", "gpt-4.1-mini", "--retries", "2", "-p", name
    )
    assert "fail-500 → gpt-4o-mini → gpt-4.1-mini; retries: 2" in out.stdout
    assert "gpt-4o-mini → gpt-4.1-mini" in gateway.cli("routing", "show", "-p", name).stdout
    failed = gateway.cli("routing", "set", "fail-500", "-f", "openpipe:ghost", "-p", name, check=False)
    assert failed.returncode == 1 and "fallbacks[0]" in failed.stdout + failed.stderr
    gateway.cli("routing", "remove", "fail-500", "-p", name)
    assert "fail-500" not in gateway.cli("routing", "show", "-p", name).stdout


def test_the_openpipe_sdk_client_side_fallback_still_works(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    text = f"sdk fallback {tag()}"
    direct = openai.OpenAI(base_url=f"{fake_provider.url}/v1", api_key="sk-fake", max_retries=0)
    client = OpenPipeOpenAI(
        api_key="sk-fake",
        openpipe={"api_key": gateway.key, "base_url": gateway.base_url, "fallback_client": direct},
    )
    reply = client.chat.completions.create(
        model="openpipe:no-such-model",
        messages=[{"role": "user", "content": text}],
        openpipe={"fallback": {"model": "gpt-4o-mini"}},
    )
    assert reply.choices[0].message.content == f"echo: {text}"
    assert upstream_models(fake_provider, text) == ["gpt-4o-mini"]  # the gateway never reached upstream
    deadline = time.monotonic() + 10  # the SDK reports the fallback's answer, in the background
    with gateway.http() as h:
        while not (reports := h.get("/logs", params={"contains": text, "source": "report"}).json()["data"]):
            assert time.monotonic() < deadline, "the fallback's answer was not reported"
            time.sleep(0.1)
        (proxied,) = h.get("/logs", params={"contains": text, "source": "proxy"}).json()["data"]
    assert (reports[0]["statusCode"], reports[0]["model"]) == (200, "gpt-4o-mini")
    assert proxied["statusCode"] == 404  # the gateway's own answer to the first try
