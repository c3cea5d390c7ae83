"""``POST /v1/messages``: Anthropic's Messages API in front of any model, driven with the real
``anthropic`` SDK (sync and async). Chat models get the request translated (the fake provider
sees a chat request); ``anthropic:`` models get it passed through (the fake Anthropic upstream
sees the caller's body)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from conftest import KEY_RE, FakeProvider, Gateway

CHAT_MODEL = "gpt-4o-mini"
CLAUDE = "claude-3-5-sonnet-20241022"
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def _client(gateway: Gateway, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.root, api_key=key or gateway.key, max_retries=0)


def _async_client(gateway: Gateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.root, api_key=gateway.key, max_retries=0)


def _header(request: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def _log(gateway: Gateway, message_id: str, key: str | None = None) -> httpx.Response:
    """The log row of a translated call, found by its message id (``msg_`` + the row's id)."""
    call_id = str(uuid.UUID(message_id.removeprefix("msg_")))
    with gateway.http(key) as h:
        return h.get(f"/logs/{call_id}")


def _post(gateway: Gateway, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{gateway.root}/v1/messages",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"x-api-key": gateway.key, "content-type": "application/json", **(headers or {})},
        timeout=30,
    )


def _events(gateway: Gateway, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A stream read raw: each SSE event's name and data."""
    out: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream(
        "POST",
        f"{gateway.root}/v1/messages",
        json={**body, "stream": True},
        headers={"x-api-key": gateway.key},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append((name, json.loads(line.removeprefix("data: "))))
    return out


def _anthropic_error(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["error"]["message"] and body["message"] == body["error"]["message"]
    return dict(body)


# ---------------------------------------------------------------- translated: chat models


def test_messages_plain_text_comes_back_as_a_message(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    r = _client(gateway).messages.create(
        model=CHAT_MODEL, max_tokens=50, messages=[{"role": "user", "content": f"hello there {m}"}]
    )
    assert r.type == "message" and r.role == "assistant"
    assert r.id.startswith("msg_")
    assert r.model == CHAT_MODEL
    assert len(r.content) == 1 and r.content[0].type == "text"
    assert r.content[0].text == f"echo: hello there {m}"
    assert r.stop_reason == "end_turn" and r.stop_sequence is None
    # The fake counts words: 3 in the prompt, 4 in the answer.
    assert (r.usage.input_tokens, r.usage.output_tokens) == (3, 4)
    assert r.usage.cache_read_input_tokens == 0

    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/chat/completions"
    assert upstream["body"]["messages"] == [{"role": "user", "content": f"hello there {m}"}]
    assert upstream["body"]["max_completion_tokens"] == 50
    assert "max_tokens" not in upstream["body"]

    logged = _log(gateway, r.id).json()
    assert logged["endpoint"] == "messages"
    assert logged["statusCode"] == 200
    assert (logged["inputTokens"], logged["outputTokens"]) == (3, 4)
    assert logged["reqPayload"]["model"] == CHAT_MODEL
    assert logged["reqPayload"]["messages"] == [{"role": "user", "content": f"hello there {m}"}]
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: hello there {m}"


@pytest.mark.parametrize(
    "system", ["Be brief.", [{"type": "text", "text": "Be"}, {"type": "text", "text": "brief."}]]
)
def test_messages_system_prompt_becomes_the_system_message(
    gateway: Gateway, fake_provider: FakeProvider, system: Any
) -> None:
    r = _client(gateway).messages.create(
        model=CHAT_MODEL, max_tokens=50, system=system, messages=[{"role": "user", "content": "hi"}]
    )
    assert r.content[0].text == "echo: hi"  # type: ignore[union-attr]
    sent = fake_provider.last()["body"]["messages"]
    expected = "Be brief." if isinstance(system, str) else "Be\n\nbrief."
    assert sent == [{"role": "system", "content": expected}, {"role": "user", "content": "hi"}]


def test_messages_parameters_are_translated(gateway: Gateway, fake_provider: FakeProvider) -> None:
    r = _client(gateway).messages.create(
        model="gemini:gemini-2.0-flash",
        max_tokens=100,
        temperature=0.3,
        top_p=0.9,
        top_k=5,
        stop_sequences=["STOP"],
        metadata={"user_id": "user-42"},
        messages=[{"role": "user", "content": "one two STOP three"}],
    )
    assert r.content[0].text == "echo: one two "  # type: ignore[union-attr]
    assert r.stop_reason == "end_turn"
    body = fake_provider.last()["body"]
    assert body["model"] == "gemini-2.0-flash"
    assert body["max_tokens"] == 100  # chat's older name everywhere but OpenAI
    assert (body["temperature"], body["top_p"]) == (0.3, 0.9)
    assert "top_k" not in body  # Gemini's chat API has no top_k
    assert body["stop"] == ["STOP"]
    assert body["user"] == "user-42"
    assert "metadata" not in body


def test_messages_max_tokens_reached_is_reported(gateway: Gateway) -> None:
    r = _client(gateway).messages.create(
        model=CHAT_MODEL, max_tokens=2, messages=[{"role": "user", "content": "a b c d e"}]
    )
    assert r.content[0].text == "echo: a"  # type: ignore[union-attr]
    assert r.stop_reason == "max_tokens"
    assert r.usage.output_tokens == 2


def test_messages_multi_block_content_becomes_parts(gateway: Gateway, fake_provider: FakeProvider) -> None:
    r = _client(gateway).messages.create(
        model=CHAT_MODEL,
        max_tokens=50,
        messages=[
            {"role": "user", "content": "first question"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "they want an echo", "signature": "sig"},
                    {"type": "text", "text": "first answer"},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look at"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                    {"type": "text", "text": "these"},
                ],
            },
        ],
    )
    assert r.content[0].text == "echo: look at these"  # type: ignore[union-attr]
    sent = fake_provider.last()["body"]["messages"]
    assert sent == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look at"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "text", "text": "these"},
            ],
        },
    ]


def test_messages_tool_round_trip(gateway: Gateway, fake_provider: FakeProvider) -> None:
    client = _client(gateway)
    question = {"role": "user", "content": "weather in Oslo"}
    first = client.messages.create(
        model=CHAT_MODEL,
        max_tokens=50,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any"},
        messages=[question],  # type: ignore[list-item]
    )
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert use.type == "tool_use"
    assert use.name == "get_weather" and use.input == {"echo": "weather in Oslo"}
    body = fake_provider.last()["body"]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert body["tool_choice"] == "required"

    final = client.messages.create(
        model=CHAT_MODEL,
        max_tokens=50,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "none"},
        messages=[
            question,  # type: ignore[list-item]
            {"role": "assistant", "content": [use.model_dump()]},  # type: ignore[list-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12 degrees, rain"}],
            },
        ],
    )
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "echo: weather in Oslo"  # type: ignore[union-attr]
    body = fake_provider.last()["body"]
    assert body["tool_choice"] == "none"
    assert body["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": use.id,
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": json.dumps(use.input, separators=(",", ":")),
                },
            }
        ],
    }
    assert body["messages"][2] == {"role": "tool", "tool_call_id": use.id, "content": "12 degrees, rain"}


def test_messages_tool_choice_by_name(gateway: Gateway, fake_provider: FakeProvider) -> None:
    other = {**WEATHER, "name": "get_time"}
    r = _client(gateway).messages.create(
        model=CHAT_MODEL,
        max_tokens=50,
        tools=[WEATHER, other],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "what time"}],
    )
    assert r.content[0].name == "get_time"  # type: ignore[union-attr]
    body = fake_provider.last()["body"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert body["parallel_tool_calls"] is False


# ---------------------------------------------------------------- streaming


def test_messages_stream_helper_gives_text_and_final_message(gateway: Gateway) -> None:
    m = _marker()
    with _client(gateway).messages.stream(
        model=CHAT_MODEL, max_tokens=50, messages=[{"role": "user", "content": f"alpha beta {m}"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"echo: alpha beta {m}"
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    logged = _log(gateway, final.id).json()
    assert logged["endpoint"] == "messages" and logged["streamed"] is True
    assert (logged["inputTokens"], logged["outputTokens"]) == (3, 4)
    assert logged["respPayload"]["choices"][0]["message"]["content"] == text


def test_messages_stream_tool_use_streams_its_input(gateway: Gateway) -> None:
    with _client(gateway).messages.stream(
        model=CHAT_MODEL,
        max_tokens=50,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Rome"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (use,) = final.content
    assert use.type == "tool_use" and use.name == "get_weather"
    assert use.input == {"echo": "weather in Rome"}


def test_messages_stream_events_are_anthropic_events(gateway: Gateway) -> None:
    events = _events(
        gateway, {"model": CHAT_MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "x y"}]}
    )
    assert all(name == data["type"] for name, data in events)
    kinds = [name for name, _ in events]
    assert kinds[:4] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [d["delta"]["text"] for k, d in events if k == "content_block_delta"]
    assert "".join(deltas) == "echo: x y"
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["content"] == [] and start["model"] == CHAT_MODEL
    delta = next(d for k, d in events if k == "message_delta")
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 3 and delta["usage"]["input_tokens"] == 2


def test_messages_async_create_stream(gateway: Gateway) -> None:
    async def run() -> list[Any]:
        async with _async_client(gateway) as client:
            stream = await client.messages.create(
                model=CHAT_MODEL, max_tokens=50, stream=True, messages=[{"role": "user", "content": "one"}]
            )
            return [event async for event in stream]

    events = asyncio.run(run())
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "echo: one"
    assert events[-2].usage.output_tokens == 2


def test_messages_async_plain_call(gateway: Gateway) -> None:
    async def run() -> anthropic.types.Message:
        async with _async_client(gateway) as client:
            return await client.messages.create(
                model=CHAT_MODEL, max_tokens=50, messages=[{"role": "user", "content": "async hello"}]
            )

    r = asyncio.run(run())
    assert r.content[0].text == "echo: async hello"  # type: ignore[union-attr]


def test_messages_midstream_failure_ends_with_an_error_event(gateway: Gateway) -> None:
    m = _marker()
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as exc,
        _client(gateway).messages.stream(
            model="fail-midstream", max_tokens=50, messages=[{"role": "user", "content": f"{m} never ends"}]
        ) as stream,
    ):
        received.extend(stream.text_stream)
    assert "upstream exploded" in exc.value.message
    assert "".join(received) == f"echo: {m}"

    events = _events(
        gateway,
        {"model": "fail-midstream", "max_tokens": 50, "messages": [{"role": "user", "content": "x y z"}]},
    )
    name, error = events[-1]
    assert name == "error" and error["type"] == "error"
    assert error["error"]["type"] == "api_error" and "upstream exploded" in error["error"]["message"]
    assert [n for n, _ in events].count("error") == 1
    assert "message_stop" not in [n for n, _ in events]


# ---------------------------------------------------------------- errors


def test_messages_missing_max_tokens_is_invalid_request(gateway: Gateway) -> None:
    r = _post(gateway, {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    body = _anthropic_error(r, 400, "invalid_request_error")
    assert "max_tokens" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"model": CHAT_MODEL, "max_tokens": 5, "messages": []}, "messages"),
        (
            {"model": CHAT_MODEL, "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
            "max_tokens",
        ),
        ({"model": CHAT_MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "role"),
        (
            {
                "model": CHAT_MODEL,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "hologram", "data": "x"}]}],
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "model": CHAT_MODEL,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0].type",
        ),
        (
            {
                "model": CHAT_MODEL,
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
                ],
            },
            "messages[0].content[0].type",
        ),
    ],
)
def test_messages_bad_requests_are_400s_naming_the_field(gateway: Gateway, body: Any, param: str) -> None:
    r = _post(gateway, body if isinstance(body, bytes) else body)
    error = _anthropic_error(r, 400, "invalid_request_error")
    assert param in error["error"]["message"]


def test_messages_bad_key_is_authentication_error(gateway: Gateway, fake_provider: FakeProvider) -> None:
    fake_provider.clear()
    with pytest.raises(anthropic.AuthenticationError) as exc:
        _client(gateway, "opk_nope").messages.create(
            model=CHAT_MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.status_code == 401
    assert exc.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    r = httpx.post(f"{gateway.root}/v1/messages", json={"model": CHAT_MODEL}, timeout=10)
    _anthropic_error(r, 401, "authentication_error")
    assert fake_provider.requests() == []


def test_messages_unknown_model_is_not_found(gateway: Gateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as exc:
        _client(gateway).messages.create(
            model="openpipe:no-such-fine-tune", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.status_code == 404
    assert exc.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("model", "status", "kind"),
    [
        ("fail-400", 400, "invalid_request_error"),
        ("fail-500", 502, "api_error"),
        ("fail-503", 502, "overloaded_error"),
        ("anthropic:fail-529", 502, "overloaded_error"),
        ("anthropic:fail-404", 404, "invalid_request_error"),
    ],
)
def test_messages_upstream_failures_keep_anthropics_shape(
    gateway: Gateway, model: str, status: int, kind: str
) -> None:
    r = _post(gateway, {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    _anthropic_error(r, status, kind)


def test_messages_count_tokens_needs_an_anthropic_model(gateway: Gateway) -> None:
    with pytest.raises(anthropic.BadRequestError):
        _client(gateway).messages.count_tokens(model=CHAT_MODEL, messages=[{"role": "user", "content": "x"}])


# ---------------------------------------------------------------- anthropic: pass-through


def test_messages_anthropic_models_pass_through(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    client = _client(gateway)
    r = client.messages.create(
        model=f"anthropic:{CLAUDE}",
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        top_k=3,
        stop_sequences=["never"],
        metadata={"user_id": "u-1"},
        messages=[{"role": "user", "content": f"pass {m}"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    assert r.id.startswith("msg_fake")  # the upstream's own message
    assert r.content[0].text == f"echo: pass {m}"  # type: ignore[union-attr]
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/messages"
    assert upstream["body"] == {
        "model": CLAUDE,
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "top_k": 3,
        "stop_sequences": ["never"],
        "metadata": {"user_id": "u-1"},
        "messages": [{"role": "user", "content": f"pass {m}"}],
    }
    assert _header(upstream, "x-api-key") == "ak-fake-anthropic"
    assert _header(upstream, "anthropic-version") == "2023-06-01"
    assert _header(upstream, "anthropic-beta") == "prompt-caching-2024-07-31"
    assert gateway.key not in json.dumps(upstream["headers"])

    logged = gateway.wait_for_log(m)
    assert logged["reqPayload"]["model"] == f"anthropic:{CLAUDE}"
    assert logged["reqPayload"]["messages"][-1] == {"role": "user", "content": f"pass {m}"}
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: pass {m}"
    with gateway.http() as h:
        row = h.get("/logs", params={"contains": m}).json()["data"][0]
    assert row["endpoint"] == "messages" and row["statusCode"] == 200
    assert (row["inputTokens"], row["outputTokens"]) == (r.usage.input_tokens, r.usage.output_tokens)


def test_messages_anthropic_stream_passes_through(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    with _client(gateway).messages.stream(
        model=f"anthropic:{CLAUDE}", max_tokens=64, messages=[{"role": "user", "content": f"stream {m}"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"echo: stream {m}"
    assert final.id.startswith("msg_fake") and final.stop_reason == "end_turn"
    assert fake_provider.last()["body"]["stream"] is True
    with gateway.http() as h:
        row = h.get("/logs", params={"contains": m}).json()["data"][0]
    assert row["endpoint"] == "messages" and row["streamed"] is True and row["statusCode"] == 200
    assert (row["inputTokens"], row["outputTokens"]) == (final.usage.input_tokens, final.usage.output_tokens)


def test_messages_anthropic_stream_tool_use(gateway: Gateway) -> None:
    with _client(gateway).messages.stream(
        model=f"anthropic:{CLAUDE}",
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Bergen"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"echo": "weather in Bergen"}  # type: ignore[union-attr]


def test_messages_anthropic_upstream_error_is_relayed(gateway: Gateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as exc:
        _client(gateway).messages.create(
            model="anthropic:fail-400", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "fake failure 400" in exc.value.message


def test_messages_anthropic_count_tokens(gateway: Gateway, fake_provider: FakeProvider) -> None:
    r = _client(gateway).messages.count_tokens(
        model=f"anthropic:{CLAUDE}", messages=[{"role": "user", "content": "count these words"}]
    )
    assert r.input_tokens >= 1
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/messages/count_tokens"
    assert upstream["body"]["model"] == CLAUDE


# ---------------------------------------------------------------- keys and projects


def test_messages_bearer_auth_and_api_prefix(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=f"{gateway.root}/api", auth_token=gateway.key, max_retries=0)
    r = client.messages.create(
        model=CHAT_MODEL, max_tokens=5, messages=[{"role": "user", "content": "bearer"}]
    )
    assert r.content[0].text == "echo: bearer"  # type: ignore[union-attr]


@pytest.mark.parametrize("model", [f"anthropic:{CLAUDE}", "gemini:gemini-2.0-flash"])
def test_messages_read_only_key_calls_without_logging(gateway: Gateway, model: str) -> None:
    m = _marker()
    client = _client(gateway, gateway.read_only_key)
    r = client.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": m}])
    assert r.content[0].text == f"echo: {m}"  # type: ignore[union-attr]
    with client.messages.stream(model=model, max_tokens=20, messages=[{"role": "user", "content": m}]) as s:
        assert "".join(s.text_stream) == f"echo: {m}"
    with gateway.http() as h:
        assert h.get("/logs", params={"contains": m}).json()["data"] == []


def test_messages_read_only_key_cannot_use_openai(gateway: Gateway, fake_provider: FakeProvider) -> None:
    fake_provider.clear()
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        _client(gateway, gateway.read_only_key).messages.create(
            model=CHAT_MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert fake_provider.requests() == []


@pytest.fixture(scope="module")
def other_key(gateway: Gateway) -> Iterator[str]:
    """The read/write key of a second project, which sets an Anthropic key of its own."""
    key = str(KEY_RE.findall(gateway.cli("projects", "create", f"msgs-{uuid.uuid4().hex[:8]}").stdout)[0])
    with gateway.http(key) as h:
        assert h.put("/provider-keys/anthropic", json={"apiKey": "ak-other-project"}).status_code == 200
    yield key


def test_messages_projects_keep_their_calls_and_keys(
    gateway: Gateway, fake_provider: FakeProvider, other_key: str
) -> None:
    m = _marker()
    mine = _client(gateway).messages.create(
        model=CHAT_MODEL, max_tokens=20, messages=[{"role": "user", "content": m}]
    )
    assert _log(gateway, mine.id).status_code == 200
    assert _log(gateway, mine.id, other_key).status_code == 404
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {other_key}"}) as h:
        assert h.get("/logs", params={"contains": m}).json()["data"] == []

    theirs = _client(gateway, other_key).messages.create(
        model=f"anthropic:{CLAUDE}", max_tokens=20, messages=[{"role": "user", "content": f"their {m}"}]
    )
    assert theirs.content[0].text == f"echo: their {m}"  # type: ignore[union-attr]
    assert _header(fake_provider.last(), "x-api-key") == "ak-other-project"
    _client(gateway).messages.create(
        model=f"anthropic:{CLAUDE}", max_tokens=20, messages=[{"role": "user", "content": f"mine {m}"}]
    )
    assert _header(fake_provider.last(), "x-api-key") == "ak-fake-anthropic"
    with gateway.http() as h:
        assert h.get("/logs", params={"contains": f"their {m}"}).json()["data"] == []
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {other_key}"}) as h:
        assert len(h.get("/logs", params={"contains": f"their {m}"}).json()["data"]) == 1


@pytest.mark.parametrize("model", [CHAT_MODEL, f"anthropic:{CLAUDE}"])
def test_messages_log_row_keeps_the_request_id(gateway: Gateway, model: str) -> None:
    m = _marker()
    r = _post(gateway, {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": m}]})
    assert r.status_code == 200
    with gateway.http() as h:
        (row,) = h.get("/logs", params={"contains": m}).json()["data"]
    assert row["requestId"] == r.headers["x-request-id"]
    assert row["endpoint"] == "messages"


def test_messages_use_the_chat_cache_and_fallbacks(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    body = {"model": CHAT_MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": f"cached {m}"}]}
    first = _post(gateway, body, {"op-cache": "readWrite"})
    calls = len(fake_provider.requests())
    second = _post(gateway, body, {"op-cache": "readWrite"})
    assert (first.headers["op-cache-status"], second.headers["op-cache-status"]) == ("MISS", "HIT")
    assert second.json()["content"] == first.json()["content"]
    assert len(fake_provider.requests()) == calls  # answered from the cache

    fallen = _post(gateway, {**body, "model": "fail-503"}, {"op-fallback": f'["{CHAT_MODEL}"]'})
    assert fallen.status_code == 200, fallen.text
    assert fallen.headers["op-model"] == CHAT_MODEL
    assert fallen.json()["content"][0]["text"] == f"echo: cached {m}"
