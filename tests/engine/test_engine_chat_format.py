"""chat_format: prompts through the chat template (with the fallback tool prompt when the template
knows no tools), tool calls parsed back, and the schema a forced tool call must follow."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from transformers import AutoTokenizer

from tunepipe.engine import chat_format
from tunepipe.engine.constrained import ConstraintFactory
from tunepipe.errors import InvalidRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}

NATIVE_TEMPLATE = (
    "{% if tools %}TOOLS {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "{% if m.get('tool_calls') %}CALLS {{ m['tool_calls'] | tojson }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_dir)


def rendered(tokenizer: Any, body: dict[str, Any]) -> str:
    return str(tokenizer.decode(chat_format.render_prompt(tokenizer, body)))


# ---------------------------------------------------------------------- parse_tool_calls


def test_parse_tool_calls_reads_hermes_blocks() -> None:
    text = (
        'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call> {"name": "get_time", "arguments": {}} </tool_call>'
    )
    content, calls = chat_format.parse_tool_calls(text)
    assert content == "Let me check."
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert orjson.loads(calls[1]["function"]["arguments"]) == {}
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert calls[0]["id"] != calls[1]["id"]


def test_parse_tool_calls_only_calls_leave_no_content() -> None:
    content, calls = chat_format.parse_tool_calls(
        '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>'
    )
    assert content is None
    assert len(calls) == 1


def test_parse_tool_calls_accepts_a_bare_call_object() -> None:
    content, calls = chat_format.parse_tool_calls(' {"name": "f", "parameters": {"x": [1, 2]}} ')
    assert content is None
    assert calls[0]["function"]["name"] == "f"
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"x": [1, 2]}


@pytest.mark.parametrize(
    "text",
    [
        "just words",
        "<tool_call>{not json}</tool_call>",
        '<tool_call>{"arguments": {}}</tool_call>',  # no name
        '{"city": "Paris"}',  # an object, but not a call
        "",
    ],
)
def test_parse_tool_calls_leaves_other_text_alone(text: str) -> None:
    assert chat_format.parse_tool_calls(text) == (text, [])


# ---------------------------------------------------------------------- forced_tool_schema


def call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool["function"]["name"]},
            "arguments": tool["function"].get("parameters") or {"type": "object"},
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def test_forced_tool_schema_required_with_one_tool() -> None:
    body = {"tools": [WEATHER], "tool_choice": "required"}
    assert chat_format.forced_tool_schema(body) == call_schema(WEATHER)


def test_forced_tool_schema_required_with_several_tools_is_any_of() -> None:
    body = {"tools": [WEATHER, TIME], "tool_choice": "required"}
    assert chat_format.forced_tool_schema(body) == {"anyOf": [call_schema(WEATHER), call_schema(TIME)]}


def test_forced_tool_schema_named_function() -> None:
    body = {"tools": [WEATHER, TIME], "tool_choice": {"type": "function", "function": {"name": "get_time"}}}
    assert chat_format.forced_tool_schema(body) == call_schema(TIME)


def test_forced_tool_schema_legacy_function_call() -> None:
    body = {"functions": [WEATHER["function"]], "function_call": {"name": "get_weather"}}
    assert chat_format.forced_tool_schema(body) == call_schema(WEATHER)


@pytest.mark.parametrize("choice", [None, "auto", "none"])
def test_forced_tool_schema_is_none_unless_a_call_is_forced(choice: str | None) -> None:
    body: dict[str, Any] = {"tools": [WEATHER]}
    if choice is not None:
        body["tool_choice"] = choice
    assert chat_format.forced_tool_schema(body) is None


def test_forced_tool_schema_unknown_name_is_invalid() -> None:
    body = {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}
    with pytest.raises(InvalidRequest):
        chat_format.forced_tool_schema(body)


def matcher_accepts(tokenizer: Any, grammar: str, text: str) -> bool:
    factory = ConstraintFactory(tokenizer, len(tokenizer))
    matcher = factory.lark(grammar)
    ids = tokenizer.encode(text)
    return bool(matcher.try_consume_tokens(ids) == len(ids) and matcher.is_accepting())


def test_tool_call_grammar_accepts_exactly_compact_valid_calls(tokenizer: Any) -> None:
    grammar = chat_format.tool_call_grammar(call_schema(WEATHER))
    call = '{"name":"get_weather","arguments":{"city":"Paris"}}'
    assert matcher_accepts(tokenizer, grammar, f"<tool_call>{call}</tool_call>")
    assert not matcher_accepts(tokenizer, grammar, f"<tool_call>{call}")
    assert not matcher_accepts(
        tokenizer, grammar, '<tool_call>{"name":"get_time","arguments":{}}</tool_call>'
    )
    assert not matcher_accepts(
        tokenizer, grammar, '<tool_call>{"name":"get_weather","arguments":{}}</tool_call>'
    )
    # Whitespace is not free: a weak model could otherwise pad a call until max_tokens.
    assert not matcher_accepts(
        tokenizer, grammar, '<tool_call>{ "name":"get_weather","arguments":{"city":"P"}}</tool_call>'
    )


def test_json_schema_constraint_rejects_invalid_values(tokenizer: Any) -> None:
    factory = ConstraintFactory(tokenizer, len(tokenizer))
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    good, bad = tokenizer.encode('{"ok":true}'), tokenizer.encode('{"ok":1}')
    matcher = factory.json_schema(schema)
    assert matcher.try_consume_tokens(good) == len(good) and matcher.is_accepting()
    matcher = factory.json_schema(schema)
    assert matcher.try_consume_tokens(bad) < len(bad)
    with pytest.raises(InvalidRequest):
        factory.lark("start: nope")


# ---------------------------------------------------------------------- render_prompt


def test_render_prompt_without_tools_is_the_chat_template(tokenizer: Any) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    expected = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert chat_format.render_prompt(tokenizer, {"messages": messages}) == list(expected)


def test_render_prompt_fallback_describes_tools_in_a_new_system_message(tokenizer: Any) -> None:
    assert not chat_format.template_supports_tools(tokenizer)
    text = rendered(tokenizer, {"messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER]})
    note = chat_format.FALLBACK_TOOL_PROMPT.format(tools=orjson.dumps(WEATHER["function"]).decode())
    assert text.startswith(f"<|im_start|>system\n{note}<|im_end|>\n<|im_start|>user\nweather?<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\n")


def test_render_prompt_fallback_extends_an_existing_system_message(tokenizer: Any) -> None:
    body = {
        "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "weather?"}],
        "tools": [WEATHER, TIME],
    }
    text = rendered(tokenizer, body)
    described = "\n".join(orjson.dumps(t["function"]).decode() for t in (WEATHER, TIME))
    note = chat_format.FALLBACK_TOOL_PROMPT.format(tools=described)
    assert text.startswith(f"<|im_start|>system\nbe brief\n\n{note}<|im_end|>\n")
    assert text.count("<|im_start|>system") == 1


def test_render_prompt_tool_choice_none_hides_the_tools(tokenizer: Any) -> None:
    messages = [{"role": "user", "content": "weather?"}]
    plain = chat_format.render_prompt(tokenizer, {"messages": messages})
    hidden = chat_format.render_prompt(
        tokenizer, {"messages": messages, "tools": [WEATHER], "tool_choice": "none"}
    )
    assert hidden == plain


def test_render_prompt_fallback_replays_calls_and_results(tokenizer: Any) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
        ],
        "tools": [WEATHER],
    }
    text = rendered(tokenizer, body)
    assert (
        '<|im_start|>assistant\n<tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>'
        in text
    )
    assert "<|im_start|>user\n<tool_response>sunny</tool_response><|im_end|>" in text


def test_render_prompt_native_template_receives_the_tools(tokenizer: Any) -> None:
    native = copy.deepcopy(tokenizer)
    native.chat_template = NATIVE_TEMPLATE
    assert chat_format.template_supports_tools(native)
    body = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": '{"city":"X"}'}}
                ],
            },
        ],
        "tools": [WEATHER],
    }
    text = rendered(native, body)
    assert text.startswith("TOOLS ")
    assert '"get_weather"' in text.splitlines()[0]
    assert chat_format.FALLBACK_TOOL_PROMPT.split("\n")[0] not in text
    assert "CALLS " in text and '"city": "X"' in text


def test_render_prompt_rejects_non_text_content(tokenizer: Any) -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}
        ]
    }
    with pytest.raises(InvalidRequest):
        chat_format.render_prompt(tokenizer, body)
