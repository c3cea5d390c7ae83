"""The OpenAI ⇄ Anthropic translation, checked on plain dicts (no network)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tunepipe.errors import InvalidRequest, UpstreamError
from tunepipe.providers.anthropic.translate import (
    DEFAULT_MAX_TOKENS,
    StreamTranslator,
    from_anthropic_request,
    to_anthropic_request,
    to_openai_completion,
)

MODEL = "claude-sonnet-4-5"


def request(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- to_anthropic_request -------------------------------------------------------------------


def test_to_anthropic_request_minimal_user_message() -> None:
    out = to_anthropic_request(request(user("Hi")))

    assert out == {
        "model": MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": DEFAULT_MAX_TOKENS,
    }


def test_to_anthropic_request_system_and_developer_hoisted_and_joined() -> None:
    out = to_anthropic_request(
        request(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            user("Hi"),
        )
    )

    assert out["system"] == "Be brief.\n\nAnswer in French."
    assert [m["role"] for m in out["messages"]] == ["user"]


def test_to_anthropic_request_user_parts_text_and_images() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]

    out = to_anthropic_request(request(user(content)))

    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_to_anthropic_request_pdf_file_part_becomes_document() -> None:
    part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}}

    out = to_anthropic_request(request(user([part])))

    assert out["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    ]


@pytest.mark.parametrize("url", ["data:image/png,notbase64", "ftp://example.com/a.png", ""])
def test_to_anthropic_request_bad_image_url_rejected(url: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]

    with pytest.raises(InvalidRequest) as exc:
        to_anthropic_request(request(user(content)))

    assert exc.value.param == "messages[0].content[0].image_url"


def test_to_anthropic_request_unsupported_part_rejected() -> None:
    content = [{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]

    with pytest.raises(InvalidRequest) as exc:
        to_anthropic_request(request(user(content)))

    assert exc.value.param == "messages[0].content[0]"


def test_to_anthropic_request_tool_calls_and_results() -> None:
    out = to_anthropic_request(
        request(
            user("Weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    tool_call("call_1", "weather", '{"city": "Paris"}'),
                    tool_call("call_2", "weather", '{"city": "Rome"}'),
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
            user("Thanks, and which is warmer?"),
        )
    )

    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
                {"type": "text", "text": "Thanks, and which is warmer?"},
            ],
        },
    ]


def test_to_anthropic_request_assistant_without_content_has_only_tool_use() -> None:
    assistant = {"role": "assistant", "content": None, "tool_calls": [tool_call("c", "now", "")]}

    out = to_anthropic_request(request(user("Time?"), assistant))

    assert out["messages"][1]["content"] == [{"type": "tool_use", "id": "c", "name": "now", "input": {}}]


@pytest.mark.parametrize("arguments", ['{"city": ', "[1, 2]"])
def test_to_anthropic_request_bad_tool_arguments_rejected(arguments: str) -> None:
    assistant = {
        "role": "assistant",
        "tool_calls": [tool_call("c", "f", "{}"), tool_call("d", "f", arguments)],
    }

    with pytest.raises(InvalidRequest) as exc:
        to_anthropic_request(request(user("x"), assistant))

    assert exc.value.param == "messages[1].tool_calls[1].function.arguments"


def test_to_anthropic_request_tool_message_without_id_rejected() -> None:
    with pytest.raises(InvalidRequest) as exc:
        to_anthropic_request(request(user("x"), {"role": "tool", "content": "y"}))

    assert exc.value.param == "messages[1].tool_call_id"


def test_to_anthropic_request_legacy_function_call_and_result() -> None:
    out = to_anthropic_request(
        request(
            user("Time?"),
            {"role": "assistant", "content": None, "function_call": {"name": "now", "arguments": "{}"}},
            {"role": "function", "name": "now", "content": "12:00"},
            functions=[{"name": "now", "description": "Current time"}],
            function_call={"name": "now"},
        )
    )

    call, result = out["messages"][1]["content"][0], out["messages"][2]["content"][0]
    assert call == {"type": "tool_use", "id": call["id"], "name": "now", "input": {}}
    assert result == {"type": "tool_result", "tool_use_id": call["id"], "content": "12:00"}
    assert out["tools"] == [
        {"name": "now", "description": "Current time", "input_schema": {"type": "object", "properties": {}}}
    ]
    assert out["tool_choice"] == {"type": "tool", "name": "now"}


def test_to_anthropic_request_function_result_without_call_rejected() -> None:
    with pytest.raises(InvalidRequest) as exc:
        to_anthropic_request(request(user("x"), {"role": "function", "name": "now", "content": "12:00"}))

    assert exc.value.param == "messages[1].name"


def test_to_anthropic_request_consecutive_same_role_merged() -> None:
    out = to_anthropic_request(
        request(
            user("one"),
            user([{"type": "text", "text": "two"}]),
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": [{"type": "text", "text": "four"}]},
            {"role": "assistant", "content": ""},
        )
    )

    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}],
        },
    ]


def test_to_anthropic_request_tools_translated() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Weather now", "parameters": schema},
        },
        {"type": "function", "function": {"name": "ping"}},
    ]

    out = to_anthropic_request(request(user("x"), tools=tools))

    assert out["tools"] == [
        {"name": "weather", "description": "Weather now", "input_schema": schema},
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in out


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", {"type": "none"}),
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "ping"}}, {"type": "tool", "name": "ping"}),
    ],
)
def test_to_anthropic_request_tool_choice_mapped(choice: Any, expected: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "ping"}}]

    out = to_anthropic_request(request(user("x"), tools=tools, tool_choice=choice))

    assert out["tool_choice"] == expected


def test_to_anthropic_request_parallel_tool_calls_false_disables_parallel_use() -> None:
    tools = [{"type": "function", "function": {"name": "ping"}}]

    plain = to_anthropic_request(request(user("x"), tools=tools, parallel_tool_calls=False))
    required = to_anthropic_request(
        request(user("x"), tools=tools, tool_choice="required", parallel_tool_calls=False)
    )

    assert plain["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert required["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_to_anthropic_request_tool_choice_without_tools_dropped() -> None:
    out = to_anthropic_request(request(user("x"), tool_choice="none"))

    assert "tool_choice" not in out
    assert "tools" not in out


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, DEFAULT_MAX_TOKENS),
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 100, "max_completion_tokens": 200}, 200),
    ],
)
def test_to_anthropic_request_max_tokens_chosen(fields: dict[str, Any], expected: int) -> None:
    assert to_anthropic_request(request(user("x"), **fields))["max_tokens"] == expected


@pytest.mark.parametrize(("stop", "expected"), [("END", ["END"]), (["a", "b"], ["a", "b"])])
def test_to_anthropic_request_stop_becomes_stop_sequences(stop: Any, expected: list[str]) -> None:
    assert to_anthropic_request(request(user("x"), stop=stop))["stop_sequences"] == expected


def test_to_anthropic_request_sampling_stream_and_user_kept_openai_only_dropped() -> None:
    out = to_anthropic_request(
        request(
            user("x"),
            temperature=0.2,
            top_p=0.9,
            stream=True,
            stream_options={"include_usage": True},
            user="u-42",
            metadata={"tag": "a"},
            logprobs=True,
            top_logprobs=2,
            presence_penalty=0.5,
            frequency_penalty=0.5,
            seed=7,
            n=1,
            stop=None,
        )
    )

    assert out == {
        "model": MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "max_tokens": DEFAULT_MAX_TOKENS,
        "temperature": 0.2,
        "top_p": 0.9,
        "stream": True,
        "metadata": {"user_id": "u-42"},
    }


def test_to_anthropic_request_n_above_one_rejected() -> None:
    with pytest.raises(InvalidRequest) as exc:
        to_anthropic_request(request(user("x"), n=2))

    assert exc.value.param == "n"


def test_to_anthropic_request_json_object_adds_system_instruction() -> None:
    out = to_anthropic_request(
        request(
            {"role": "system", "content": "Be brief."}, user("x"), response_format={"type": "json_object"}
        )
    )

    assert out["system"].startswith("Be brief.\n\n")
    assert "JSON object" in out["system"]


def test_to_anthropic_request_json_schema_instruction_includes_schema() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}}

    out = to_anthropic_request(request(user("x"), response_format=response_format))

    assert orjson.dumps(schema).decode() in out["system"]


def test_to_anthropic_request_text_response_format_changes_nothing() -> None:
    out = to_anthropic_request(request(user("x"), response_format={"type": "text"}))

    assert "system" not in out


# --- to_openai_completion -------------------------------------------------------------------


def anthropic_message(
    content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def test_to_openai_completion_text_answer() -> None:
    resp = anthropic_message([{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}])

    out = to_openai_completion(resp, "my-model", created=123)

    assert out == {
        "id": "msg_01",
        "object": "chat.completion",
        "created": 123,
        "model": "my-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def test_to_openai_completion_created_defaults_to_now() -> None:
    out = to_openai_completion(anthropic_message([]), MODEL)

    assert isinstance(out["created"], int)
    assert out["created"] > 1_700_000_000
    assert out["choices"][0]["message"]["content"] == ""


def test_to_openai_completion_tool_use_becomes_tool_calls() -> None:
    resp = anthropic_message(
        [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris", "days": 2}}],
        stop_reason="tool_use",
    )

    choice = to_openai_completion(resp, MODEL)["choices"][0]

    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Paris","days":2}'},
        }
    ]


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_to_openai_completion_finish_reason_mapped(stop_reason: str, expected: str) -> None:
    out = to_openai_completion(anthropic_message([], stop_reason=stop_reason), MODEL)

    assert out["choices"][0]["finish_reason"] == expected


def test_to_openai_completion_usage_counts_cache_as_prompt() -> None:
    resp = anthropic_message([], cache_read_input_tokens=100, cache_creation_input_tokens=20)

    usage = to_openai_completion(resp, MODEL)["usage"]

    assert usage == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


def test_to_openai_completion_thinking_becomes_reasoning_content() -> None:
    resp = anthropic_message(
        [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xxx"},
            {"type": "text", "text": "42"},
        ]
    )

    message = to_openai_completion(resp, MODEL)["choices"][0]["message"]

    assert message["reasoning_content"] == "Let me think."
    assert message["content"] == "42"


# --- StreamTranslator -----------------------------------------------------------------------


def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def block_delta(index: int, kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return event("content_block_delta", index=index, delta={"type": kind, **fields})


# A text block then a tool call whose arguments arrive in pieces, as Anthropic streams them.
TOOL_STREAM: list[tuple[str, dict[str, Any]]] = [
    event(
        "message_start",
        message={
            "id": "msg_stream",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": MODEL,
            "stop_reason": None,
            "usage": {"input_tokens": 472, "cache_read_input_tokens": 28, "output_tokens": 2},
        },
    ),
    event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    event("ping"),
    block_delta(0, "text_delta", text="Okay"),
    block_delta(0, "text_delta", text=", checking."),
    event("content_block_stop", index=0),
    event(
        "content_block_start",
        index=1,
        content_block={"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
    ),
    block_delta(1, "input_json_delta", partial_json=""),
    block_delta(1, "input_json_delta", partial_json='{"loc'),
    block_delta(1, "input_json_delta", partial_json='ation": "Par'),
    block_delta(1, "input_json_delta", partial_json='is"}'),
    event("content_block_stop", index=1),
    event(
        "message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None}, usage={"output_tokens": 89}
    ),
    event("message_stop"),
]


def run_stream(
    translator: StreamTranslator, events: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    return [chunk for event, data in events for chunk in translator.feed(event, data)]


def test_stream_translator_text_then_tool_call() -> None:
    chunks = run_stream(StreamTranslator("my-model", created=7), TOOL_STREAM)

    assert all(c["id"] == "msg_stream" and c["model"] == "my-model" and c["created"] == 7 for c in chunks)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "Okay, checking."
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(call["index"] == 0 for call in calls)
    assert "".join(call["function"]["arguments"] for call in calls) == '{"location": "Paris"}'
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "tool_calls"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_stream_translator_usage_chunk_when_requested() -> None:
    translator = StreamTranslator(MODEL, include_usage=True)

    chunks = run_stream(translator, TOOL_STREAM)

    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 500,
        "completion_tokens": 89,
        "total_tokens": 589,
        "prompt_tokens_details": {"cached_tokens": 28},
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_translator_no_usage_chunk_unless_requested() -> None:
    translator = StreamTranslator(MODEL)

    chunks = run_stream(translator, TOOL_STREAM)

    assert all(c["choices"] for c in chunks)
    assert translator.usage["total_tokens"] == 589
    assert translator.finish_reason == "tool_calls"


def test_stream_translator_second_tool_gets_next_index() -> None:
    translator = StreamTranslator(MODEL)
    run_stream(translator, TOOL_STREAM[:1])

    first = translator.feed(
        "content_block_start",
        {"index": 0, "content_block": {"type": "tool_use", "id": "a", "name": "f", "input": {}}},
    )
    second = translator.feed(
        "content_block_start",
        {"index": 1, "content_block": {"type": "tool_use", "id": "b", "name": "g", "input": {}}},
    )
    fragment = translator.feed(
        "content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}
    )

    assert first[0]["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert second[0]["choices"][0]["delta"]["tool_calls"][0]["index"] == 1
    assert fragment[0]["choices"][0]["delta"]["tool_calls"] == [{"index": 1, "function": {"arguments": "{}"}}]


def test_stream_translator_thinking_delta_becomes_reasoning_content() -> None:
    translator = StreamTranslator(MODEL)
    run_stream(translator, TOOL_STREAM[:1])

    translator.feed(
        "content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}
    )
    chunks = translator.feed(
        "content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}}
    )
    signature = translator.feed(
        "content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "s"}}
    )

    assert chunks[0]["choices"][0]["delta"] == {"reasoning_content": "Hmm."}
    assert signature == []


@pytest.mark.parametrize(("stop_reason", "expected"), [("max_tokens", "length"), ("end_turn", "stop")])
def test_stream_translator_message_delta_finish_reason(stop_reason: str, expected: str) -> None:
    translator = StreamTranslator(MODEL)

    chunks = translator.feed(
        "message_delta", {"delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 3}}
    )

    assert chunks[0]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": expected}


def test_stream_translator_event_type_read_from_data_when_missing() -> None:
    chunks = StreamTranslator(MODEL).feed("", {"type": "message_start", "message": {"id": "m"}})

    assert chunks[0]["id"] == "m"


def test_stream_translator_unknown_events_ignored() -> None:
    translator = StreamTranslator(MODEL)

    assert translator.feed("ping", {"type": "ping"}) == []
    assert translator.feed("brand_new_event", {"type": "brand_new_event"}) == []
    assert translator.feed("content_block_stop", {"index": 0}) == []


def test_stream_translator_error_event_raises() -> None:
    data = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    with pytest.raises(UpstreamError) as exc:
        StreamTranslator(MODEL).feed("error", data)

    assert "Overloaded" in exc.value.message
    assert exc.value.code == "overloaded_error"


# --- from_anthropic_request -----------------------------------------------------------------


def test_from_anthropic_request_full_conversation() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    req = {
        "model": MODEL,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "max_tokens": 512,
        "temperature": 0.3,
        "top_p": 0.8,
        "top_k": 5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "stream": True,
        "tools": [
            {"name": "weather", "description": "Weather now", "input_schema": schema},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
            {"role": "assistant", "content": "Probably 20C."},
        ],
    }

    out = from_anthropic_request(req)

    assert out == {
        "model": MODEL,
        "max_tokens": 512,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "description": "Weather now", "parameters": schema},
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Be brief.\n\nBe kind."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
            {"role": "assistant", "content": "Probably 20C."},
        ],
    }


def test_from_anthropic_request_string_system_and_content() -> None:
    out = from_anthropic_request(
        {"model": MODEL, "max_tokens": 10, "system": "Be brief.", "messages": [user("Hi")]}
    )

    assert out["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert "metadata" not in out


def test_from_anthropic_request_tool_results_only_become_tool_messages() -> None:
    content = [
        {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "1"}]},
        {"type": "tool_result", "tool_use_id": "b", "is_error": True},
    ]

    out = from_anthropic_request({"model": MODEL, "messages": [user(content)]})

    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "1"}]},
        {"role": "tool", "tool_call_id": "b", "content": ""},
    ]


def test_from_anthropic_request_assistant_only_tool_use_has_null_content() -> None:
    content = [{"type": "tool_use", "id": "t", "name": "now", "input": {}}]

    out = from_anthropic_request({"model": MODEL, "messages": [{"role": "assistant", "content": content}]})

    assert out["messages"][0]["content"] is None
    assert out["messages"][0]["tool_calls"][0]["function"] == {"name": "now", "arguments": "{}"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_from_anthropic_request_tool_choice_mapped(choice: dict[str, Any], expected: Any) -> None:
    out = from_anthropic_request({"model": MODEL, "messages": [], "tool_choice": choice})

    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_from_anthropic_request_round_trips_through_to_anthropic_request() -> None:
    original = to_anthropic_request(
        request(
            {"role": "system", "content": "Be brief."},
            user("Time?"),
            {"role": "assistant", "content": None, "tool_calls": [tool_call("c1", "now", '{"tz":"UTC"}')]},
            {"role": "tool", "tool_call_id": "c1", "content": "12:00"},
            tools=[{"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}],
            tool_choice="auto",
            max_tokens=64,
            stop=["END"],
        )
    )

    assert to_anthropic_request(from_anthropic_request(original)) == original


def test_report_response_reuses_to_openai_completion() -> None:
    resp = anthropic_message([{"type": "text", "text": "ok"}])

    out = to_openai_completion(resp, resp["model"])

    assert out["model"] == MODEL
    assert out["choices"][0]["message"]["content"] == "ok"
