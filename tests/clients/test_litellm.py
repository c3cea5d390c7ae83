"""litellm's SDK with tunepipe as an OpenAI-compatible ``api_base`` (``model="openai/<model>"``):
a completion, a stream, tools, a pydantic ``response_format``, ``acompletion``,
``litellm.embedding`` and ``litellm.responses``.

The client runs in the ecosystem virtualenv (``ecosystem_python``) as a subprocess against the
live server, with litellm's price table read from the package (``LITELLM_LOCAL_MODEL_COST_MAP``)
so that nothing is fetched from the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clients.conftest import logged_calls
from clients.venvs import run_json
from conftest import FakeProvider, Gateway
from fakes.provider import fake_vector

HERE = Path(__file__).resolve().parent
MODEL = "gemini:gemini-2.0-flash"
EMBEDDING = "openai:text-embedding-3-small"

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
        [ecosystem_python, HERE / "litellm_client.py", f"{gateway.root}/v1", gateway.key, MODEL, EMBEDDING],
    )
    out["fake_requests"] = fake_provider.requests()
    return out


def test_litellm_completion_echoes_and_is_logged(gateway: Gateway, seen: dict[str, Any]) -> None:
    assert seen["completion"] == {"text": "echo: hello from litellm", "total_tokens": 7}
    assert seen["acompletion"] == "echo: async litellm"
    [logged] = logged_calls(gateway, "hello from litellm")
    assert logged["model"] == MODEL and logged["statusCode"] == 200
    # litellm sends the model name after its "openai/" prefix, unchanged.
    assert logged["reqPayload"]["model"] == MODEL


def test_litellm_stream_arrives_in_pieces(seen: dict[str, Any]) -> None:
    assert seen["stream"] == ["echo:", " streamed", " from", " litellm"]
    assert seen["astream"] == ["echo:", " async", " stream"]


def test_litellm_tools_come_back_parsed(seen: dict[str, Any]) -> None:
    assert seen["tools"] == {
        "finish_reason": "tool_calls",
        "calls": [{"name": "get_weather", "arguments": {"echo": "weather in Oslo"}}],
    }


def test_litellm_response_format_gets_a_schema_instance(seen: dict[str, Any]) -> None:
    assert seen["structured"] == {"name": "Ada", "age": 0, "tags": []}
    sent = next(r["body"] for r in seen["fake_requests"] if r["body"] and r["body"].get("response_format"))
    assert sent["response_format"]["type"] == "json_schema"
    assert set(sent["response_format"]["json_schema"]["schema"]["properties"]) == {"name", "age", "tags"}


def test_litellm_responses_answers_and_streams(seen: dict[str, Any]) -> None:
    assert seen["responses"]["status"] == "completed"
    assert seen["responses"]["text"] == "echo: hello responses"
    stream = seen["responses_stream"]
    assert stream["text"] == "echo: streamed responses"
    assert stream["kinds"][0] == "response.created" and stream["kinds"][-1] == "response.completed"


def test_litellm_embedding_is_the_providers_vector(seen: dict[str, Any]) -> None:
    assert seen["embedding"] == {"vector": fake_vector("hello vectors", 8), "prompt_tokens": 2}
