"""Every chat request valid against OpenAI's published request schema (vendored in
``fixtures/openai_chat_request.schema.json``) is accepted by an ``openai:`` route and reaches the
provider as it was sent.

Requests are generated from the schema by schemathesis (hypothesis underneath): about 30 a
second, where hypothesis-jsonschema made 3 a second from the same schema and left most named
fields out. The model is set to an ``openai:`` model the fake provider answers; everything else
is as generated, streams included. The only refusals allowed are the rules OpenAI's own server
keeps beyond its schema, each a 400 naming the field.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from jsonschema import Draft202012Validator

from conftest import FakeProvider, Gateway

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "openai_chat_request.schema.json").read_text()
)
EXAMPLES = 300
MODEL = "openai:gpt-4o-mini"
OWNED = ("model", "metadata", "store", "stream_options")
"""Fields the gateway itself sets or drops on the way up (the routed model; log labels, sent on
only with ``store: true``; usage asked for on a stream)."""


def _operation() -> Any:
    """``POST /chat/completions`` in a one-operation OpenAPI document made of the vendored schema."""
    schemas = json.loads(json.dumps(SCHEMA["$defs"]).replace("#/$defs/", "#/components/schemas/"))
    body = {"$ref": "#/components/schemas/CreateChatCompletionRequest"}
    document = {
        "openapi": "3.1.0",
        "info": {"title": "OpenAI chat completions", "version": "vendored"},
        "paths": {
            "/chat/completions": {
                "post": {
                    "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                    "responses": {"200": {"description": "a chat completion"}},
                }
            }
        },
        "components": {"schemas": schemas},
    }
    return schemathesis.openapi.from_dict(document)["/chat/completions"]["POST"]


def openai_refuses(body: dict[str, Any]) -> set[str]:
    """The fields of ``body`` that break a rule OpenAI's server keeps beyond the schema."""
    broken = set()
    if body.get("stream_options") is not None and not body.get("stream"):
        broken.add("stream_options")
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        broken.add("top_logprobs")
    for limit in ("max_tokens", "max_completion_tokens"):
        value = body.get(limit)
        if isinstance(value, int | float) and value < 1:
            broken.add(limit)
    return broken


def difference(sent: Any, got: Any, path: str = "") -> str | None:
    """Where ``got`` first differs from ``sent`` (``.messages[1].content``), with both values;
    ``None`` when they are the same JSON (``2`` and ``2.0`` are not)."""
    if isinstance(sent, dict) and isinstance(got, dict):
        for key in sent.keys() | got.keys():
            if key not in sent or key not in got:
                return f"{path}.{key}: {sent.get(key, '(absent)')!r} became {got.get(key, '(absent)')!r}"
            if found := difference(sent[key], got[key], f"{path}.{key}"):
                return found
        return None
    if isinstance(sent, list) and isinstance(got, list) and len(sent) == len(got):
        pairs = enumerate(zip(sent, got, strict=True))
        return next((d for i, (s, g) in pairs if (d := difference(s, g, f"{path}[{i}]"))), None)
    return None if sent == got and type(sent) is type(got) else f"{path}: {sent!r} became {got!r}"


def within_64_bits(value: Any) -> Any:
    """``value`` with every integer held to 64 bits.

    JSON puts no bound on integers, but the gateway's JSON library (orjson) reads one beyond
    64 bits as a float, so such a number would reach the provider rounded: a known limit, kept
    out of what this test measures."""
    if isinstance(value, dict):
        return {k: within_64_bits(v) for k, v in value.items()}
    if isinstance(value, list):
        return [within_64_bits(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return max(-(2**63), min(value, 2**63 - 1))
    return value


def _not_owned(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in OWNED}


@pytest.fixture(scope="module")
def http(gateway: Gateway) -> Any:
    with gateway.http() as h:
        yield h


@pytest.fixture(scope="module")
def upstream(fake_provider: FakeProvider) -> Any:
    """The fake provider's request record, over one connection."""
    with httpx.Client(base_url=fake_provider.url, timeout=10) as h:
        yield h


def _send(http: httpx.Client, upstream: httpx.Client, body: dict[str, Any]) -> str | None:
    """POST ``body``; what went wrong, if anything: a refusal other than OpenAI's own (or one
    without the envelope naming the field), or a change to what reached the provider."""
    upstream.delete("/_requests")
    try:
        r = http.post("/chat/completions", json=body, timeout=10)
    except httpx.TimeoutException:
        return "no answer in 10 s"
    if broken := openai_refuses(body):
        error = (r.json().get("error") or {}) if r.status_code == 400 else {}
        if error.get("type") != "invalid_request_error" or error.get("param") not in broken:
            return f"refused {sorted(broken)} with {r.status_code} {r.text[:300]}"
        return None
    if r.status_code != 200:
        return f"{r.status_code} {r.text[:300]}"
    (sent,) = upstream.get("/_requests").json()
    if sent["body"]["model"] != MODEL.removeprefix("openai:"):
        return f"the provider was asked for {sent['body']['model']!r}"
    changed = difference(_not_owned(body), _not_owned(sent["body"]))
    return f"changed on the way: {changed[:500]}" if changed else None


@pytest.mark.slow
@pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)  # the database plays no part here
def test_openai_schema_valid_requests_are_accepted_and_passed_through(
    http: httpx.Client, upstream: httpx.Client
) -> None:
    validator = Draft202012Validator(SCHEMA)
    tally: Counter[str] = Counter()
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # every failure is collected below, none shrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_operation().as_strategy())
    def one(case: Any) -> None:
        body = {**within_64_bits(case.body), "model": MODEL}
        assert validator.is_valid(body), "the generator left the schema"
        if failure := _send(http, upstream, body):
            failures.append(f"{failure}\n    {json.dumps(body)[:1500]}")
        else:
            tally["refused by OpenAI's rules" if openai_refuses(body) else "accepted"] += 1

    started, cpu = time.perf_counter(), time.process_time()
    one()
    total = sum(tally.values()) + len(failures)
    print(
        f"\n{total} schema-valid requests: {dict(tally)}, {len(failures)} failed "
        f"({time.perf_counter() - started:.1f} s, {time.process_time() - cpu:.1f} s of CPU here)"
    )
    assert not failures, f"{len(failures)} of {total} failed:\n" + "\n".join(failures[:8])
    assert total >= EXAMPLES
    assert tally["accepted"] > tally["refused by OpenAI's rules"] > 0


USER = {"role": "user", "content": "hello"}
EDGES = {
    # The deprecated `functions` entries have no `strict`: any value is an unknown field.
    "legacy-function-strict": {"functions": [{"name": "f", "strict": "sometimes"}], "function_call": "none"},
    # JSON Schema's `integer` is any number without a fraction.
    "integers-written-as-floats": {"n": 2.0, "max_completion_tokens": 16.0, "seed": -(2**63)},
    "null-stream-options": {"stream_options": None},
    "top-logprobs-with-logprobs": {"logprobs": True, "top_logprobs": 20},
    "custom-voice": {"modalities": ["text", "audio"], "audio": {"voice": {"id": "voice_1"}, "format": "aac"}},
    "nulls-where-allowed": {"metadata": None, "stop": None, "temperature": None, "logit_bias": None},
    "assistant-history": {
        "messages": [
            USER,
            {
                "role": "assistant",
                "content": None,
                "audio": None,
                "tool_calls": [{"id": "c1", "type": "custom", "custom": {"name": "sql", "input": "x"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
        ]
    },
    "fields-only-openai-knows": {
        "prediction": {"type": "content", "content": "hello"},
        "web_search_options": {"search_context_size": "low", "user_location": None},
        "moderation": {"model": "omni-moderation-latest", "policy": None},
        "prompt_cache_options": {"ttl": "30m", "mode": "explicit"},
        "service_tier": "flex",
        "verbosity": None,
        "reasoning_effort": "xhigh",
        "safety_identifier": "u1",
    },
}


@pytest.mark.parametrize("extra", EDGES.values(), ids=EDGES.keys())
@pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)
def test_openai_schema_rare_valid_requests_are_accepted(
    http: httpx.Client, upstream: httpx.Client, extra: dict[str, Any]
) -> None:
    """Valid requests a generator seldom makes: each once, as a plain example."""
    body = {"model": MODEL, "messages": [USER], **extra}
    assert Draft202012Validator(SCHEMA).is_valid(body)
    assert _send(http, upstream, body) is None
    assert not openai_refuses(body)
