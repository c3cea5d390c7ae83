"""``anthropic:<model>`` through ``POST /chat/completions``: OpenAI shape in and out, Anthropic's
Messages API (shape and headers) on the wire to the fake provider."""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest

from conftest import FakeProvider, Gateway

MODEL = "anthropic:claude-3-5-sonnet-20241022"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _header(request: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def test_anthropic_completion_sends_messages_api_request(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = f"m{uuid.uuid4().hex[:8]}"
    r = gateway.client().chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"hello {m}"},
        ],
        max_tokens=100,
        temperature=0.5,
    )
    assert r.object == "chat.completion"
    assert r.model == "claude-3-5-sonnet-20241022"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == f"echo: hello {m}"
    assert r.choices[0].finish_reason == "stop"

    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/messages"
    assert _header(upstream, "x-api-key") == "ak-fake-anthropic"
    assert _header(upstream, "anthropic-version") == "2023-06-01"
    assert _header(upstream, "Authorization") is None
    body = upstream["body"]
    assert body["model"] == "claude-3-5-sonnet-20241022"
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": f"hello {m}"}]}]
    assert body["max_tokens"] == 100
    assert body["temperature"] == 0.5
    assert "stream" not in body

    logged = gateway.wait_for_log(m)
    assert logged["statusCode"] == 200
    assert logged["reqPayload"]["model"] == MODEL


def test_anthropic_usage_is_reported_in_openai_shape(gateway: Gateway, fake_provider: FakeProvider) -> None:
    r = gateway.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "one two three"}]
    )
    upstream_messages = fake_provider.last()["body"]["messages"]
    # The fake counts input as (words of the JSON-encoded messages) // 4 + 1 and output as words + 1.
    expected_prompt = len(json.dumps(upstream_messages, separators=(",", ":")).split()) // 4 + 1
    assert r.usage is not None
    assert r.usage.prompt_tokens == expected_prompt
    assert r.usage.completion_tokens == 4
    assert r.usage.total_tokens == expected_prompt + 4


def test_anthropic_tools_become_tool_use_and_come_back_as_tool_calls(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    r = gateway.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "weather in Oslo"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "toolu_fake1" and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"echo": "weather in Oslo"}

    body = fake_provider.last()["body"]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}


def test_anthropic_tool_choice_none_answers_in_text(gateway: Gateway, fake_provider: FakeProvider) -> None:
    r = gateway.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "just chat"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    assert r.choices[0].message.content == "echo: just chat"
    assert not r.choices[0].message.tool_calls
    assert fake_provider.last()["body"]["tool_choice"] == {"type": "none"}


def test_anthropic_tool_results_become_tool_result_blocks(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    r = gateway.client().chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "weather in Oslo"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "rain, 7C"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    # The fake echoes the tool result when the last user turn holds no text.
    assert r.choices[0].message.content == "echo: rain, 7C"
    assert fake_provider.last()["body"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Oslo"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain, 7C"}],
        },
    ]


def test_anthropic_stop_sequences_cut_the_answer(gateway: Gateway, fake_provider: FakeProvider) -> None:
    r = gateway.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "red green blue"}], stop="green"
    )
    assert r.choices[0].message.content == "echo: red "
    assert r.choices[0].finish_reason == "stop"
    assert fake_provider.last()["body"]["stop_sequences"] == ["green"]


def test_anthropic_n_above_one_is_rejected(gateway: Gateway, fake_provider: FakeProvider) -> None:
    fake_provider.clear()
    with pytest.raises(openai.BadRequestError) as exc:
        gateway.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], n=2
        )
    assert exc.value.body["param"] == "n"  # type: ignore[index]
    assert fake_provider.requests() == []


def test_anthropic_stream_translates_events_to_chunks(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = f"m{uuid.uuid4().hex[:8]}"
    stream = gateway.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"stream {m} now"}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"echo: stream {m} now"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    upstream = fake_provider.last()
    assert upstream["body"]["stream"] is True
    assert _header(upstream, "x-api-key") == "ak-fake-anthropic"
    logged = gateway.wait_for_log(m)
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: stream {m} now"


def test_anthropic_stream_include_usage_ends_with_usage(gateway: Gateway) -> None:
    stream = gateway.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert sum(c.usage is not None for c in chunks) == 1


def test_anthropic_stream_tool_call_deltas(gateway: Gateway) -> None:
    stream = gateway.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "weather in Rome"}],
        tools=[WEATHER],  # type: ignore[list-item]
        stream=True,
    )
    arguments, names, finish = "", [], None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                names += [call.function.name] if call.function and call.function.name else []
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"echo": "weather in Rome"}
    assert finish == "tool_calls"


def test_anthropic_upstream_error_keeps_status_and_message(gateway: Gateway) -> None:
    with pytest.raises(openai.RateLimitError) as exc:
        gateway.client().chat.completions.create(
            model="anthropic:fail-429", messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.status_code == 429
    assert exc.value.body["message"] == "fake failure 429"  # type: ignore[index]
    with pytest.raises(openai.InternalServerError) as exc5:
        gateway.client().chat.completions.create(
            model="anthropic:fail-529", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert exc5.value.status_code == 502
    assert "fake failure 529" in exc5.value.body["message"]  # type: ignore[index]


def test_anthropic_legacy_functions_become_tools(gateway: Gateway, fake_provider: FakeProvider) -> None:
    function = {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    r = gateway.client().chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            },
            {"role": "function", "name": "get_weather", "content": "sunny"},
            {"role": "user", "content": "and tomorrow"},
        ],
        functions=[function],  # type: ignore[list-item]
        function_call={"name": "get_weather"},
    )
    assert r.choices[0].message.content is None
    # Asked in the legacy form, answered in it: one function_call, no tool_calls.
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.function_call is not None
    assert r.choices[0].message.function_call.name == "get_weather"
    assert json.loads(r.choices[0].message.function_call.arguments) == {"echo": "and tomorrow"}
    assert r.choices[0].finish_reason == "function_call"
    body = fake_provider.last()["body"]
    assert body["tools"] == [{"name": "get_weather", "input_schema": function["parameters"]}]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    # The legacy call gets an id, and the function result answers it as a tool_result.
    call_id = body["messages"][1]["content"][0]["id"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": "sunny"},
            {"type": "text", "text": "and tomorrow"},
        ],
    }


def test_anthropic_legacy_functions_stream_function_call_deltas(gateway: Gateway) -> None:
    function = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    stream = gateway.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "weather in Oslo"}],
        functions=[function],  # type: ignore[list-item]
        function_call={"name": "get_weather"},
        stream=True,
    )
    name, arguments, finish = None, "", None
    for chunk in stream:
        for choice in chunk.choices:
            assert choice.delta.tool_calls is None
            if choice.delta.function_call is not None:
                name = choice.delta.function_call.name or name
                arguments += choice.delta.function_call.arguments or ""
            finish = choice.finish_reason or finish
    assert name == "get_weather" and json.loads(arguments) == {"echo": "weather in Oslo"}
    assert finish == "function_call"
