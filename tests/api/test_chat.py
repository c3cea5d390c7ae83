"""``POST /chat/completions`` to OpenAI-compatible upstreams (OpenAI, Gemini), non-streaming.

Driven with the official ``openai`` SDK against a real ``tunepipe serve``; what reached the
upstream is read back from the fake provider's request record.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest

from conftest import FakeProvider, Gateway


def _header(request: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def test_chat_completion_api_v1_returns_upstream_answer(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    r = gateway.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": m}])
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == f"echo: {m}"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.prompt_tokens == 1 and r.usage.completion_tokens == 2
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/chat/completions"
    assert upstream["body"]["model"] == "gpt-4o"
    assert _header(upstream, "Authorization") == "Bearer sk-fake-openai"


def test_chat_completion_v1_alias_works_like_api_v1(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.root}/v1", api_key=gateway.key, max_retries=0)
    m = _marker()
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": m}])
    assert r.choices[0].message.content == f"echo: {m}"
    assert gateway.wait_for_log(m)["statusCode"] == 200


def test_chat_completion_n_returns_every_choice(gateway: Gateway, fake_provider: FakeProvider) -> None:
    r = gateway.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], n=3
    )
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert [c.message.content for c in r.choices] == ["[0] echo: hi", "[1] echo: hi", "[2] echo: hi"]
    assert fake_provider.last()["body"]["n"] == 3


def test_chat_completion_stop_cuts_the_answer(gateway: Gateway, fake_provider: FakeProvider) -> None:
    r = gateway.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "red green blue"}], stop=["green", "zzz"]
    )
    assert r.choices[0].message.content == "echo: red "
    assert r.choices[0].finish_reason == "stop"
    assert fake_provider.last()["body"]["stop"] == ["green", "zzz"]


def test_chat_completion_max_tokens_truncates_with_length(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    r = gateway.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three four"}], max_tokens=3
    )
    assert r.choices[0].message.content == "echo: one two"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 3
    assert fake_provider.last()["body"]["max_tokens"] == 3


def test_chat_completion_named_tool_choice_calls_that_tool(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    r = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "what time"}],
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id == "call_0"
    assert call.function.name == "get_time"
    assert json.loads(call.function.arguments) == {"echo": "what time"}
    body = fake_provider.last()["body"]
    assert body["tools"] == [WEATHER, TIME]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


def test_chat_completion_auto_tool_choice_returns_tool_calls(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    r = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather in Oslo"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="auto",
    )
    calls = r.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"echo": "weather in Oslo"}
    assert fake_provider.last()["body"]["tool_choice"] == "auto"


def test_chat_completion_tool_choice_none_answers_in_text(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    r = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "just talk"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content == "echo: just talk"
    assert fake_provider.last()["body"]["tool_choice"] == "none"


def test_chat_completion_legacy_functions_reach_upstream_untouched(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    functions = [WEATHER["function"]]
    messages: list[Any] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        },
        {"role": "function", "name": "get_weather", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    r = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=messages,
        functions=functions,  # type: ignore[arg-type]
        function_call={"name": "get_weather"},
    )
    call = r.choices[0].message.function_call
    assert (
        call is not None and call.name == "get_weather" and json.loads(call.arguments) == {"echo": "thanks"}
    )
    assert r.choices[0].finish_reason == "function_call"
    body = fake_provider.last()["body"]
    assert body["functions"] == functions
    assert body["function_call"] == {"name": "get_weather"}
    assert body["messages"] == messages


def test_chat_completion_current_openai_tool_features_reach_openai_untouched(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    """Custom tools, custom tool calls in the history, ``allowed_tools`` and a custom voice are
    valid OpenAI requests: an OpenAI route forwards them as sent."""
    marker = f"tools-{uuid.uuid4().hex[:8]}"
    custom = {"type": "custom", "custom": {"name": "run_sql", "description": "free-form SQL"}}
    messages: list[Any] = [
        {"role": "user", "content": "count rows"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "custom", "custom": {"name": "run_sql", "input": "select 1"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "user", "content": marker},
    ]
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [custom]}}
    extra = {"audio": {"format": "mp3", "voice": {"id": "voice_123"}}, "modalities": ["text", "audio"]}
    r = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=[WEATHER, custom],  # type: ignore[list-item]
        tool_choice=allowed,  # type: ignore[arg-type]
        extra_body=extra,
    )
    assert r.choices[0].message.tool_calls or r.choices[0].message.content
    body = fake_provider.last()["body"]
    assert body["messages"] == messages and body["tools"] == [WEATHER, custom]
    assert body["tool_choice"] == allowed and body["audio"] == extra["audio"]


def test_chat_completion_custom_tools_to_anthropic_are_a_400_before_the_upstream(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    marker = f"custom-{uuid.uuid4().hex[:8]}"
    custom = {"type": "custom", "custom": {"name": "run_sql"}}
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(
            model="anthropic:claude-3-5-sonnet-20241022",
            messages=[{"role": "user", "content": marker}],
            tools=[custom],  # type: ignore[list-item]
        )
    assert err.value.body["param"] == "tools[0].type"  # type: ignore[index]
    assert not [r for r in fake_provider.requests() if marker in json.dumps(r["body"])]


def test_chat_completion_bad_tool_choice_names_the_field_not_a_validator_path(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "x"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="sometimes",  # type: ignore[arg-type]
        )
    assert err.value.body["param"] == "tool_choice"  # type: ignore[index]


def test_chat_completion_multi_turn_tool_results_are_forwarded(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "weather in Oslo and Rome"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "rain"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "sun"}]},
        {"role": "user", "content": "so which is nicer"},
    ]
    r = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    assert r.choices[0].message.content == "echo: so which is nicer"
    assert fake_provider.last()["body"]["messages"] == messages


def test_chat_completion_response_format_and_unknown_fields_pass_through(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        },
    }
    extra = {"reasoning_effort": "low", "x_vendor_knob": {"depth": [1, 2, {"deep": None}]}, "seed": 7}
    r = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "json please"}],
        response_format=response_format,  # type: ignore[arg-type]
        temperature=0.2,
        extra_body=extra,
    )
    assert json.loads(r.choices[0].message.content or "") == {"a": 0}  # the fake's instance of the schema
    body = fake_provider.last()["body"]
    assert body["response_format"] == response_format
    assert body["temperature"] == 0.2
    for key, value in extra.items():
        assert body[key] == value


def test_chat_completion_openai_prefix_is_stripped_upstream(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    r = gateway.client().chat.completions.create(
        model="openai:gpt-4o", messages=[{"role": "user", "content": m}]
    )
    assert r.choices[0].message.content == f"echo: {m}"
    assert fake_provider.last()["body"]["model"] == "gpt-4o"
    # The log keeps the model as the caller named it.
    assert gateway.wait_for_log(m)["reqPayload"]["model"] == "openai:gpt-4o"


def test_chat_completion_metadata_labels_the_log_but_is_not_forwarded(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    gateway.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": m}], metadata={"prompt_id": "classify-v2"}
    )
    body = fake_provider.last()["body"]
    assert "metadata" not in body and "store" not in body
    assert gateway.wait_for_log(m)["metadata"]["prompt_id"] == "classify-v2"


def test_chat_completion_store_true_forwards_metadata_to_openai_only(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    client = gateway.client()
    metadata = {"prompt_id": "stored"}
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "a"}], metadata=metadata, store=True
    )
    body = fake_provider.last()["body"]
    assert body["store"] is True and body["metadata"] == metadata

    client.chat.completions.create(
        model="gemini:gemini-2.0-flash",
        messages=[{"role": "user", "content": "b"}],
        metadata=metadata,
        store=True,
    )
    body = fake_provider.last()["body"]
    assert body["model"] == "gemini-2.0-flash"
    assert "metadata" not in body and "store" not in body


def test_chat_completion_gemini_routes_with_its_own_key(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    r = gateway.client().chat.completions.create(
        model="gemini:gemini-2.0-flash", messages=[{"role": "user", "content": m}]
    )
    assert r.choices[0].message.content == f"echo: {m}"
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/chat/completions"
    assert upstream["body"]["model"] == "gemini-2.0-flash"
    assert _header(upstream, "Authorization") == "Bearer gk-fake-gemini"
    logged = gateway.wait_for_log(m)
    assert logged["statusCode"] == 200
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: {m}"


def test_chat_completion_op_headers_are_accepted(gateway: Gateway, fake_provider: FakeProvider) -> None:
    client = gateway.client()
    for mode in ("readWrite", "readOnly", "writeOnly"):
        m = _marker()
        r = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": m}],
            extra_headers={
                "op-cache": mode,
                "op-tags": json.dumps({"prompt_id": "hdr", "attempt": 2}),
            },
        )
        assert r.choices[0].message.content == f"echo: {m}"
        upstream = fake_provider.last()
        assert upstream["body"]["messages"] == [{"role": "user", "content": m}]
        assert not any(k.lower().startswith("op-") for k in upstream["headers"])
        assert gateway.wait_for_log(m)["metadata"] == {"prompt_id": "hdr", "attempt": "2"}


def test_chat_completion_op_log_request_false_skips_the_log(gateway: Gateway) -> None:
    client = gateway.client()
    logged = _marker()
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": logged}])
    gateway.wait_for_log(logged)
    skipped = _marker()
    r = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": skipped}],
        extra_headers={"op-log-request": "false"},
    )
    assert r.choices[0].message.content == f"echo: {skipped}"
    assert logged in json.dumps(gateway.latest()["reqPayload"])
