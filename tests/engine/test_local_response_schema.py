"""Answers the local engine produces itself are valid against OpenAI's response schemas: plain,
tool calls, legacy function calls, logprobs, several choices, and every streamed chunk."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Gateway
from engine.test_local_chat import WEATHER
from openai_schema import check_completion, check_stream

MODEL = "local:tiny"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "weather in paris?"}], "max_tokens": 40}

CASES: dict[str, dict[str, Any]] = {
    "plain": {},
    "choices-and-logprobs": {"n": 2, "logprobs": True, "top_logprobs": 2, "temperature": 0.7},
    "tool-call": {"tools": [WEATHER], "tool_choice": "required", "max_tokens": 80},
    "legacy-function-call": {
        "functions": [WEATHER["function"]],
        "function_call": {"name": "get_weather"},
        "max_tokens": 80,
    },
    "json-schema": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "w",
                "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            },
        }
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_local_answer_is_a_valid_openai_response(local: Gateway, case: str) -> None:
    with local.http() as h:
        answer = check_completion(h, {**ASK, **CASES[case]})
    if case == "tool-call":
        assert answer["choices"][0]["message"]["tool_calls"]
    if case == "legacy-function-call":
        assert answer["choices"][0]["message"]["function_call"]["name"] == "get_weather"


@pytest.mark.parametrize("case", sorted(CASES))
def test_local_stream_chunks_are_valid_openai_chunks(local: Gateway, case: str) -> None:
    with local.http() as h:
        chunks = check_stream(h, {**ASK, **CASES[case], "stream_options": {"include_usage": True}})
    assert chunks[-1]["usage"]["completion_tokens"] >= 1
