"""Plain ``curl`` against a live ``tunepipe serve``: what a shell script or an integration with
no SDK sees — a completion, a server-sent event stream, a tool call, a json_schema answer, the
error envelope of a bad key and the model list, on the ``/v1`` paths OpenAI clients use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from clients.conftest import logged_calls
from conftest import Gateway

pytestmark = [
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
    pytest.mark.parametrize("gateway", ["sqlite"], indirect=True),
]

MODEL = "gemini:gemini-2.0-flash"


def _curl(gateway: Gateway, path: str, body: dict[str, Any] | None = None, *, key: str | None = None) -> str:
    command = ["curl", "-sS", "-N", "-H", f"Authorization: Bearer {key or gateway.key}"]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    # The status on a line of its own after the body, as a script would read it.
    command += ["-w", "\n%{http_code}", f"{gateway.root}/v1{path}"]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout


def _json(out: str, status: int = 200) -> Any:
    body, _, code = out.rpartition("\n")
    assert int(code) == status, out
    return json.loads(body)


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def test_curl_completion_echoes_and_is_logged(gateway: Gateway) -> None:
    answer = _json(_curl(gateway, "/chat/completions", _chat("hello from curl")))
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo: hello from curl",
        "refusal": None,
    }
    assert answer["usage"]["prompt_tokens"] == 3 and answer["usage"]["completion_tokens"] == 4
    [logged] = logged_calls(gateway, "hello from curl")
    assert logged["model"] == MODEL and logged["statusCode"] == 200
    assert logged["completionId"] == answer["id"]


def test_curl_stream_sends_data_lines_until_done(gateway: Gateway) -> None:
    out = _curl(gateway, "/chat/completions", _chat("streamed by curl", stream=True))
    body, _, code = out.rpartition("\n")
    assert code == "200"
    events = [line for line in body.split("\n") if line]
    assert all(line.startswith("data: ") for line in events), events
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: streamed by curl"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_curl_tool_call_carries_the_arguments(gateway: Gateway) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    answer = _json(_curl(gateway, "/chat/completions", _chat("weather in Oslo", tools=[tool])))
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"echo": "weather in Oslo"}


def test_curl_json_schema_answer_is_an_instance(gateway: Gateway) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    answer = _json(_curl(gateway, "/chat/completions", _chat("Ada", response_format=fmt)))
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"name": "Ada", "age": 0}


def test_curl_bad_key_gets_the_401_envelope(gateway: Gateway) -> None:
    error = _json(_curl(gateway, "/chat/completions", _chat("never sent"), key="opk_not-a-key"), 401)
    assert error["error"]["type"] == "authentication_error"
    assert error["error"]["code"] == "invalid_api_key"
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert error["message"] == error["error"]["message"] and error["code"] == "UNAUTHORIZED"
    assert logged_calls(gateway, "never sent", timeout_s=0.5) == []


def test_curl_models_lists_what_the_sdk_lists(gateway: Gateway) -> None:
    listed = _json(_curl(gateway, "/models"))
    assert listed["object"] == "list" and listed["data"]
    assert {m["object"] for m in listed["data"]} == {"model"}
    with gateway.client() as sdk:
        assert [m["id"] for m in listed["data"]] == [m.id for m in sdk.models.list()]
