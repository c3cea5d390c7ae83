"""Every chat completion through the gateway is logged — with the official openai and openpipe
SDKs, streamed or not, failed or not — unless the caller opted out.

Each test sends unique text and finds its own log with ``GET /logs?contains=…``: both backends
share one fake provider and logs accumulate within a backend's session.
"""

import time
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import httpx
import openai
import pytest
from openpipe import OpenAI as OpenPipeOpenAI

from conftest import FakeProvider, Gateway

SDK_TAGS = {"$sdk": "python", "$sdk.version": version("openpipe")}


def marker() -> str:
    return f"m{uuid.uuid4().hex}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def logs(gateway: Gateway, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    with gateway.http(key) as h:
        r = h.get("/logs", params={"bodies": "true", **params})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def only_log(gateway: Gateway, text: str) -> dict[str, Any]:
    found = logs(gateway, contains=text)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as c:
        yield c


def gpt4o_cost(prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * 2.50 + completion_tokens * 10.00) / 1_000_000


def openpipe_client(gateway: Gateway, fake_provider: FakeProvider) -> OpenPipeOpenAI:
    return OpenPipeOpenAI(
        api_key="sk-fake-openai",
        base_url=f"{fake_provider.url}/v1",
        max_retries=0,
        openpipe={"api_key": gateway.key, "base_url": gateway.base_url},
    )


def test_proxy_log_records_every_field_of_a_call(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    before = now_ms()
    r = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "be kind"}, {"role": "user", "content": f"hello {text}"}],
        metadata={"prompt_id": "greet", "env": "test"},
        extra_headers={"op-tags": '{"customer": "acme", "attempt": 2}'},
    )
    after = now_ms()
    log = only_log(gateway, text)
    assert log["model"] == "gpt-4o"
    assert log["statusCode"] == 200
    assert log["errorMessage"] is None
    assert before <= log["requestedAt"] <= log["receivedAt"] <= after
    assert log["durationMs"] == log["receivedAt"] - log["requestedAt"]
    assert r.usage is not None
    assert (log["inputTokens"], log["outputTokens"]) == (r.usage.prompt_tokens, r.usage.completion_tokens)
    assert (log["inputTokens"], log["outputTokens"]) == (4, 3)  # the fake counts words
    assert log["cost"] == pytest.approx(gpt4o_cost(4, 3), rel=1e-12)
    assert log["cost"] == pytest.approx(0.00004, rel=1e-12)  # (4 × 2.50 + 3 × 10.00) / 1M
    assert log["finishReason"] == "stop"
    assert log["completionId"] == r.id
    assert log["source"] == "proxy"
    assert log["streamed"] is False
    assert log["cacheHit"] is False
    assert log["metadata"] == {"prompt_id": "greet", "env": "test", "customer": "acme", "attempt": "2"}
    assert log["reqPayload"]["model"] == "gpt-4o"
    assert log["reqPayload"]["messages"][1] == {"role": "user", "content": f"hello {text}"}
    assert log["reqPayload"]["metadata"] == {"prompt_id": "greet", "env": "test"}
    assert log["respPayload"] == r.model_dump(exclude_unset=True)


def test_proxy_log_keeps_model_as_the_caller_wrote_it(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    r = client.chat.completions.create(
        model="openai:gpt-4o-mini-2024-07-18", messages=[{"role": "user", "content": text}]
    )
    log = only_log(gateway, text)
    assert log["model"] == "openai:gpt-4o-mini-2024-07-18"
    assert r.usage is not None
    expected = (r.usage.prompt_tokens * 0.15 + r.usage.completion_tokens * 0.60) / 1e6
    assert log["cost"] == pytest.approx(expected, rel=1e-12)


def test_proxy_log_anthropic_call_is_priced_and_counted(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    r = client.chat.completions.create(
        model="anthropic:claude-3-5-sonnet-20241022",
        messages=[{"role": "user", "content": f"bonjour {text}"}],
    )
    log = only_log(gateway, text)
    assert log["model"] == "anthropic:claude-3-5-sonnet-20241022"
    assert r.usage is not None
    assert (log["inputTokens"], log["outputTokens"]) == (r.usage.prompt_tokens, r.usage.completion_tokens)
    expected = (r.usage.prompt_tokens * 3.0 + r.usage.completion_tokens * 15.0) / 1e6
    assert log["cost"] == pytest.approx(expected, rel=1e-12)
    assert log["finishReason"] == "stop"
    assert log["respPayload"]["choices"][0]["message"]["content"] == f"echo: bonjour {text}"


def test_proxy_log_streamed_anthropic_call_has_tokens_and_cost(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    text = marker()
    chunks = list(
        client.chat.completions.create(
            model="anthropic:claude-3-haiku-20240307",
            messages=[{"role": "user", "content": text}],
            stream=True,
        )
    )
    assert all(c.usage is None for c in chunks)
    log = only_log(gateway, text)
    assert log["streamed"] is True
    assert log["respPayload"]["choices"][0]["message"]["content"] == f"echo: {text}"
    assert log["inputTokens"] is not None and log["outputTokens"] is not None
    expected = (log["inputTokens"] * 0.25 + log["outputTokens"] * 1.25) / 1e6
    assert log["cost"] == pytest.approx(expected, rel=1e-12)
    assert log["finishReason"] == "stop"


def test_proxy_log_unpriced_model_has_tokens_but_no_cost(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    client.chat.completions.create(model="my-local-model", messages=[{"role": "user", "content": text}])
    log = only_log(gateway, text)
    assert log["inputTokens"] == 1
    assert log["cost"] is None


def test_proxy_log_streamed_call_is_the_assembled_completion(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"one two {text}"}], stream=True
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    streamed_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    log = only_log(gateway, text)
    assert log["streamed"] is True
    assert log["statusCode"] == 200
    assert log["errorMessage"] is None
    message = log["respPayload"]["choices"][0]["message"]
    assert message == {"role": "assistant", "content": streamed_text}
    assert streamed_text == f"echo: one two {text}"
    # Tokens and cost are logged even though the client never saw usage.
    assert (log["inputTokens"], log["outputTokens"]) == (3, 4)
    assert log["cost"] == pytest.approx(gpt4o_cost(3, 4), rel=1e-12)
    assert log["finishReason"] == "stop"
    assert log["completionId"] == chunks[0].id
    assert log["reqPayload"]["stream"] is True
    assert "stream_options" not in log["reqPayload"]  # the log keeps what the caller sent


def test_proxy_log_streamed_call_with_usage_requested(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": text}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    log = only_log(gateway, text)
    assert (log["inputTokens"], log["outputTokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert log["respPayload"]["usage"]["total_tokens"] == usage.total_tokens


def test_proxy_log_streamed_tool_calls_and_choices_are_assembled(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    text = marker()
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    list(
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": text}], tools=tools, n=2, stream=True
        )
    )
    log = only_log(gateway, text)
    choices = log["respPayload"]["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    for i, choice in enumerate(choices):
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["tool_calls"] == [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": "lookup", "arguments": f'{{"echo":"{text}"}}'},
            }
        ]
    assert log["finishReason"] == "tool_calls"


def test_proxy_log_stream_broken_midway_keeps_partial_text_and_error(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    text = marker()
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="fail-midstream", messages=[{"role": "user", "content": f"a b c d {text}"}], stream=True
            )
        )
    log = only_log(gateway, text)
    assert log["streamed"] is True
    assert "upstream exploded" in log["errorMessage"]
    assert log["statusCode"] == 502
    assert log["respPayload"]["choices"][0]["message"]["content"] == "echo: a"


def test_proxy_log_upstream_error_keeps_status_and_message(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="fail-429", messages=[{"role": "user", "content": text}], metadata={"prompt_id": "err"}
        )
    log = only_log(gateway, text)
    assert log["statusCode"] == 429
    assert log["errorMessage"] == "fake failure 429"
    assert log["respPayload"]["error"]["message"] == "fake failure 429"
    assert log["model"] == "fail-429"
    assert log["metadata"] == {"prompt_id": "err"}
    assert log["inputTokens"] is None and log["cost"] is None


def test_proxy_log_validation_error_keeps_parsed_body(gateway: Gateway) -> None:
    text = marker()
    with gateway.http() as h:
        r = h.post("/chat/completions", json={"model": "gpt-4o", "messages": text})
    assert r.status_code == 400
    log = only_log(gateway, text)
    assert log["statusCode"] == 400
    assert log["errorMessage"] == r.json()["message"]
    assert log["reqPayload"] == {"model": "gpt-4o", "messages": text}
    assert log["model"] == "gpt-4o"


def test_proxy_log_validation_error_keeps_its_labels(gateway: Gateway) -> None:
    text = marker()
    body = {"model": "gpt-4o", "messages": text, "metadata": {"prompt_id": "broken"}}
    with gateway.http() as h:
        r = h.post("/chat/completions", json=body, headers={"op-tags": '{"env": "prod"}'})
    assert r.status_code == 400
    log = only_log(gateway, text)
    assert log["statusCode"] == 400
    assert log["metadata"] == {"prompt_id": "broken", "env": "prod"}


def test_proxy_log_unparsable_body_keeps_raw_text(gateway: Gateway) -> None:
    text = marker()
    raw = '{"model": "gpt-4o", "messages": [' + text
    with gateway.http() as h:
        r = h.post("/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    log = only_log(gateway, text)
    assert log["statusCode"] == 400
    assert log["reqPayload"] == {"raw": raw}
    assert log["errorMessage"].startswith("Request body is not valid JSON")
    assert log["model"] is None


def test_proxy_log_bad_op_tags_header_is_rejected_and_logged(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    with pytest.raises(openai.BadRequestError, match="Failed to parse tags"):
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": text}], extra_headers={"op-tags": "{oops"}
        )
    log = only_log(gateway, text)
    assert log["statusCode"] == 400
    assert log["errorMessage"].startswith("Failed to parse tags")


@pytest.mark.parametrize(
    "opt_out",
    [
        {"extra_headers": {"op-log-request": "false"}},
        {"extra_headers": {"op-log-request": "False"}},
        {"store": False},
    ],
    ids=["header", "header-capitalised", "store-false"],
)
def test_proxy_log_opt_out_is_not_logged(
    gateway: Gateway, client: openai.OpenAI, opt_out: dict[str, Any]
) -> None:
    text = marker()
    r = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], **opt_out
    )
    assert r.choices[0].message.content == f"echo: {text}"
    assert logs(gateway, contains=text) == []


def test_proxy_log_opt_out_also_skips_failed_calls(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="fail-429",
            messages=[{"role": "user", "content": text}],
            extra_headers={"op-log-request": "false"},
        )
    assert logs(gateway, contains=text) == []


@pytest.mark.parametrize(
    ("body_extra", "headers", "read_only"),
    [({"store": False}, {}, False), ({}, {"op-log-request": "false"}, False), ({}, {}, True)],
    ids=["store-false", "header", "read-only-key"],
)
def test_proxy_log_opt_out_holds_for_invalid_requests(
    gateway: Gateway, body_extra: dict[str, Any], headers: dict[str, str], read_only: bool
) -> None:
    text = marker()
    with gateway.http(gateway.read_only_key if read_only else None) as h:
        r = h.post(
            "/chat/completions", json={"model": "gpt-4o", "messages": text, **body_extra}, headers=headers
        )
    assert r.status_code == 400
    assert logs(gateway, contains=text) == []


def test_proxy_log_read_only_key_never_logs(gateway: Gateway) -> None:
    text = marker()
    with gateway.client(gateway.read_only_key) as client:
        r = client.chat.completions.create(
            model="anthropic:claude-3-haiku-20240307", messages=[{"role": "user", "content": text}]
        )
        assert r.choices[0].message.content == f"echo: {text}"
        with pytest.raises(openai.PermissionDeniedError):  # plain OpenAI is off limits to read-only keys
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])
    assert logs(gateway, contains=text) == []


def test_proxy_log_latest_logged_call_shows_the_call(gateway: Gateway, client: openai.OpenAI) -> None:
    text = marker()
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], metadata={"prompt_id": "latest"}
    )
    latest = gateway.latest()
    assert latest["reqPayload"]["messages"][0]["content"] == text
    assert latest["statusCode"] == 200
    assert latest["errorMessage"] is None
    assert latest["cacheHit"] is False
    assert latest["createdAt"].endswith("Z")
    assert latest["metadata"] == latest["tags"] == {"prompt_id": "latest"}
    assert latest["respPayload"]["choices"][0]["message"]["content"] == f"echo: {text}"


def test_openpipe_sdk_prefixed_model_goes_through_gateway_with_sdk_tags(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    text = marker()
    client = openpipe_client(gateway, fake_provider)
    r = client.chat.completions.create(
        model="openai:gpt-4o",
        messages=[{"role": "user", "content": text}],
        metadata={"prompt_id": "sdk"},
        openpipe={"tags": {"team": "search", "rank": 1}},
    )
    assert r.choices[0].message.content == f"echo: {text}"
    log = only_log(gateway, text)
    assert log["source"] == "proxy"
    assert log["model"] == "openai:gpt-4o"
    assert log["metadata"] == {"prompt_id": "sdk", "team": "search", "rank": "1", **SDK_TAGS}
    assert log["cost"] == pytest.approx(gpt4o_cost(log["inputTokens"], log["outputTokens"]), rel=1e-12)
    upstream = [q for q in fake_provider.requests() if text in str(q["body"])]
    assert upstream[-1]["body"]["model"] == "gpt-4o"
    assert "metadata" not in upstream[-1]["body"]  # OpenAI rejects metadata without store


def test_openpipe_sdk_prefixed_model_stream_is_logged_with_tokens(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    text = marker()
    client = openpipe_client(gateway, fake_provider)
    chunks = list(
        client.chat.completions.create(
            model="openai:gpt-4o", messages=[{"role": "user", "content": text}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"echo: {text}"
    log = only_log(gateway, text)
    assert log["streamed"] is True
    assert (log["inputTokens"], log["outputTokens"]) == (1, 2)
    assert log["metadata"] == SDK_TAGS


def test_openpipe_sdk_log_request_false_is_not_logged(gateway: Gateway, fake_provider: FakeProvider) -> None:
    text = marker()
    client = openpipe_client(gateway, fake_provider)
    client.chat.completions.create(
        model="openai:gpt-4o", messages=[{"role": "user", "content": text}], openpipe={"log_request": False}
    )
    assert logs(gateway, contains=text) == []


def test_openpipe_sdk_plain_model_is_reported_after_direct_call(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    text = marker()
    client = openpipe_client(gateway, fake_provider)
    before = now_ms()
    r = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"direct {text}"}],
        metadata={"prompt_id": "direct"},
    )
    log = only_log(gateway, text)
    assert log["source"] == "report"  # the SDK called the provider itself, then /report
    assert log["model"] == "gpt-4o"
    assert log["requestedAt"] >= before
    assert log["durationMs"] == log["receivedAt"] - log["requestedAt"]
    assert log["completionId"] == r.id
    assert (log["inputTokens"], log["outputTokens"]) == (2, 3)
    assert log["cost"] == pytest.approx(gpt4o_cost(2, 3), rel=1e-12)
    assert log["finishReason"] == "stop"
    assert log["metadata"] == {"prompt_id": "direct", **SDK_TAGS}
    assert log["respPayload"]["choices"][0]["message"]["content"] == f"echo: direct {text}"


def test_openpipe_sdk_plain_model_error_is_reported(gateway: Gateway, fake_provider: FakeProvider) -> None:
    text = marker()
    client = openpipe_client(gateway, fake_provider)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fail-400", messages=[{"role": "user", "content": text}])
    log = only_log(gateway, text)
    assert log["source"] == "report"
    assert log["statusCode"] == 400
    assert log["errorMessage"] == "fake failure 400"


def test_proxy_log_requires_a_valid_key(gateway: Gateway) -> None:
    r = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": "Bearer opk_nope"},
    )
    assert r.status_code == 401
