"""langchain-openai's ``ChatOpenAI`` pointed at tunepipe with ``base_url``: invoke, stream, tools,
structured output, the async forms and the Responses API (``use_responses_api=True``).

The client runs in the ecosystem virtualenv (``ecosystem_python``: its openai is newer than the
test virtualenv's) as a subprocess against the live server; the script prints what it saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clients.conftest import logged_calls
from clients.venvs import run_json
from conftest import FakeProvider, Gateway

HERE = Path(__file__).resolve().parent
MODEL = "gemini:gemini-2.0-flash"
AGENT = "gemini:tool-then-answer"

pytestmark = [
    pytest.mark.slow,
    # The first test builds the virtualenv (once per requirements file) and runs the client.
    pytest.mark.timeout(900),
    pytest.mark.parametrize("gateway", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def seen(gateway: Gateway, fake_provider: FakeProvider, ecosystem_python: Path) -> dict[str, Any]:
    fake_provider.clear()
    out = run_json(
        [ecosystem_python, HERE / "langchain_client.py", f"{gateway.root}/v1", gateway.key, MODEL, AGENT]
    )
    out["fake_requests"] = fake_provider.requests()
    return out


def test_langchain_invoke_echoes_and_is_logged(gateway: Gateway, seen: dict[str, Any]) -> None:
    assert seen["invoke"] == {
        "text": "echo: hello from langchain",
        "total_tokens": 7,
        "model_name": "gemini-2.0-flash",
    }
    [logged] = logged_calls(gateway, "hello from langchain")
    assert logged["model"] == MODEL and logged["endpoint"] == "chat.completions"
    assert logged["respPayload"]["choices"][0]["message"]["content"] == "echo: hello from langchain"


def test_langchain_stream_arrives_in_pieces(seen: dict[str, Any]) -> None:
    assert seen["stream"] == ["echo:", " streamed", " from", " langchain"]
    assert seen["astream"] == ["echo:", " async", " stream"]
    assert seen["ainvoke"] == "echo: hello async langchain"


def test_langchain_bind_tools_parses_the_tool_call(seen: dict[str, Any]) -> None:
    assert seen["tools"] == [{"name": "get_weather", "args": {"echo": "weather in Oslo"}}]
    # A turn of the agent loop: the tool's answer went back to the model as a tool message.
    assert seen["agent"] == {"asked": {"city": "Bergen"}, "final": "tool said: sunny in Bergen"}
    sent = [
        r["body"] for r in seen["fake_requests"] if r["body"] and r["body"].get("model") == "tool-then-answer"
    ]
    assert sent[-1]["messages"][-1] == {
        "role": "tool",
        "content": "sunny in Bergen",
        "tool_call_id": sent[-1]["messages"][-2]["tool_calls"][0]["id"],
    }


def test_langchain_with_structured_output_returns_the_model(seen: dict[str, Any]) -> None:
    assert seen["structured"] == {"name": "Ada", "age": 0, "tags": []}
    assert seen["astructured"] == {"name": "Grace", "age": 0, "tags": []}
    sent = next(r["body"] for r in seen["fake_requests"] if r["body"] and r["body"].get("response_format"))
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "Person"


def test_langchain_responses_api_answers(seen: dict[str, Any]) -> None:
    assert seen["responses"]["text"] == "echo: hello responses"
    assert seen["responses"]["id"].startswith("resp_")
    assert seen["responses_stream"] == "echo: streamed responses"
