"""The official ``openpipe`` SDK (5.0.0) against the gateway: prefixed models are sent through
``/chat/completions`` with the SDK's ``op-*`` headers, bare OpenAI models go straight to the
provider and are reported to ``/report`` afterwards."""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest
from openpipe import OpenAI as OpenPipeOpenAI

from conftest import FakeProvider, Gateway

# The SDK's own OpenAI key; the gateway uses its configured one (sk-fake-openai), so the key the
# fake sees tells which way a call went.
DIRECT_KEY = "sk-direct-client"
SDK_TAGS = {"$sdk": "python", "$sdk.version": "5.0.0"}


def _client(gateway: Gateway, fake_provider: FakeProvider) -> OpenPipeOpenAI:
    return OpenPipeOpenAI(
        api_key=DIRECT_KEY,
        base_url=f"{fake_provider.url}/v1",
        max_retries=0,
        openpipe={"api_key": gateway.key, "base_url": gateway.base_url},
    )


def _authorization(request: dict[str, Any]) -> str | None:
    return next((v for k, v in request["headers"].items() if k.lower() == "authorization"), None)


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def test_openpipe_sdk_openai_prefix_goes_through_gateway(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    r = _client(gateway, fake_provider).chat.completions.create(
        model="openai:gpt-4o",
        messages=[{"role": "user", "content": m}],
        metadata={"env": "test"},
        openpipe={"tags": {"prompt_id": "sdk-openai"}},
    )
    assert r.choices[0].message.content == f"echo: {m}"
    upstream = fake_provider.last()
    assert upstream["body"]["model"] == "gpt-4o"
    assert _authorization(upstream) == "Bearer sk-fake-openai"
    logged = gateway.wait_for_log(m)
    assert logged["statusCode"] == 200
    assert logged["reqPayload"]["model"] == "openai:gpt-4o"
    assert logged["metadata"] == {**SDK_TAGS, "prompt_id": "sdk-openai", "env": "test"}


def test_openpipe_sdk_anthropic_goes_through_gateway(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    r = _client(gateway, fake_provider).chat.completions.create(
        model="anthropic:claude-3-5-sonnet-20241022",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": m}],
        openpipe={"tags": {"prompt_id": "sdk-anthropic"}},
    )
    assert r.choices[0].message.content == f"echo: {m}"
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/messages"
    assert upstream["body"]["system"] == "Be brief."
    logged = gateway.wait_for_log(m)
    assert logged["metadata"] == {**SDK_TAGS, "prompt_id": "sdk-anthropic"}
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: {m}"


def test_openpipe_sdk_stream_through_gateway_is_logged(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    stream = _client(gateway, fake_provider).chat.completions.create(
        model="openai:gpt-4o-mini", messages=[{"role": "user", "content": f"{m} streamed"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == f"echo: {m} streamed"
    logged = gateway.wait_for_log(m)
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: {m} streamed"
    assert logged["metadata"] == SDK_TAGS


def test_openpipe_sdk_bare_model_calls_provider_then_reports(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    r = _client(gateway, fake_provider).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": m}],
        metadata={"prompt_id": "direct"},
        openpipe={"tags": {"team": "search"}},
    )
    assert r.choices[0].message.content == f"echo: {m}"
    upstream = fake_provider.last()
    assert _authorization(upstream) == f"Bearer {DIRECT_KEY}"
    assert "metadata" not in upstream["body"]  # the SDK drops it without store=True
    logged = gateway.wait_for_log(m)
    assert logged["statusCode"] == 200
    assert logged["reqPayload"]["model"] == "gpt-4o"
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: {m}"
    assert logged["metadata"] == {**SDK_TAGS, "team": "search", "prompt_id": "direct"}
    with gateway.http() as h:
        found = h.get("/logs", params={"metadata.team": "search", "contains": m}).json()["data"]
    assert [(c["source"], c["inputTokens"], c["outputTokens"]) for c in found] == [("report", 1, 2)]


def test_openpipe_sdk_bare_model_stream_reports_merged_completion(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    stream = _client(gateway, fake_provider).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"{m} in pieces"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == f"echo: {m} in pieces"
    assert _authorization(fake_provider.last()) == f"Bearer {DIRECT_KEY}"
    logged = gateway.wait_for_log(m)
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: {m} in pieces"


def test_openpipe_sdk_bare_model_failure_is_reported(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    with pytest.raises(openai.BadRequestError):
        _client(gateway, fake_provider).chat.completions.create(
            model="fail-400", messages=[{"role": "user", "content": m}]
        )
    assert _authorization(fake_provider.last()) == f"Bearer {DIRECT_KEY}"
    logged = gateway.wait_for_log(m)
    assert logged["statusCode"] == 400


def test_openpipe_sdk_cache_option_routes_through_gateway(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    r = _client(gateway, fake_provider).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": m}], openpipe={"cache": "readWrite"}
    )
    assert r.choices[0].message.content == f"echo: {m}"
    # With a cache mode the SDK sends even a bare model to the gateway (op-cache header).
    assert _authorization(fake_provider.last()) == "Bearer sk-fake-openai"
    assert gateway.wait_for_log(m)["metadata"] == SDK_TAGS


def test_openpipe_sdk_log_request_false_is_not_logged(gateway: Gateway, fake_provider: FakeProvider) -> None:
    client = _client(gateway, fake_provider)
    before = _marker()
    client.chat.completions.create(model="openai:gpt-4o", messages=[{"role": "user", "content": before}])
    gateway.wait_for_log(before)
    m = _marker()
    r = client.chat.completions.create(
        model="openai:gpt-4o", messages=[{"role": "user", "content": m}], openpipe={"log_request": False}
    )
    assert r.choices[0].message.content == f"echo: {m}"
    assert fake_provider.last()["body"]["messages"][0]["content"] == m
    assert before in json.dumps(gateway.latest()["reqPayload"])


def test_openpipe_sdk_unknown_openpipe_model_raises_not_found(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        _client(gateway, fake_provider).chat.completions.create(
            model="openpipe:not-trained-yet", messages=[{"role": "user", "content": "x"}]
        )
    assert "does not exist" in exc.value.body["message"]  # type: ignore[index]
