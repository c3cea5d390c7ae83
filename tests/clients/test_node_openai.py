"""The openai npm SDK (Node) pointed at tunepipe with ``baseURL``: a chat completion, a stream,
a tool call, the SDK's tool loop (``runTools``), structured output with the zod helper, the
Responses API (a call, a stream, ``responses.parse``) and a bad key's error.

``node/package-lock.json`` pins the SDK; ``npm ci`` installs it once into ``.cache/clients/``
(keyed by the lockfile's hash) and ``node/client.mjs`` runs against the live server, printing
what it saw. Skipped only when node or npm is missing or the npm registry cannot be reached.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from clients.conftest import logged_calls
from clients.venvs import run_json
from conftest import FakeProvider, Gateway
from fakes.provider import fake_vector

HERE = Path(__file__).resolve().parent
MODEL = "gemini:gemini-2.0-flash"
AGENT = "gemini:tool-then-answer"
EMBEDDING = "openai:text-embedding-3-small"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.parametrize("gateway", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def seen(
    gateway: Gateway, fake_provider: FakeProvider, node_openai: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    # Node resolves packages from the script's own directory upwards: the script runs beside a
    # link to the cached node_modules.
    where = tmp_path_factory.mktemp("node-client")
    shutil.copy(HERE / "node" / "client.mjs", where / "client.mjs")
    (where / "node_modules").symlink_to(node_openai, target_is_directory=True)
    fake_provider.clear()
    out = run_json(["node", where / "client.mjs", f"{gateway.root}/v1", gateway.key, MODEL, AGENT, EMBEDDING])
    out["fake_requests"] = fake_provider.requests()
    return out


def test_node_openai_completion_echoes_and_is_logged(gateway: Gateway, seen: dict[str, Any]) -> None:
    pins = (HERE / "node" / "package.json").read_text()
    assert f'"openai": "{seen["sdk_version"]}"' in pins
    assert seen["completion"] == {"text": "echo: hello from node", "finish_reason": "stop", "total_tokens": 7}
    [logged] = logged_calls(gateway, "hello from node")
    assert logged["model"] == MODEL and logged["statusCode"] == 200


def test_node_openai_stream_arrives_in_pieces_with_usage(seen: dict[str, Any]) -> None:
    assert seen["stream"] == {
        "deltas": ["echo:", " streamed", " from", " node"],
        "text": "echo: streamed from node",
        "total_tokens": 7,
    }


def test_node_openai_tools_are_parsed_and_run(seen: dict[str, Any]) -> None:
    assert seen["tools"] == {
        "finish_reason": "tool_calls",
        "name": "get_weather",
        "arguments": {"echo": "weather in Oslo"},
    }
    assert seen["run_tools"] == {"final": "tool said: sunny in Bergen"}
    sent = [
        r["body"] for r in seen["fake_requests"] if r["body"] and r["body"].get("model") == "tool-then-answer"
    ]
    assert sent[-1]["messages"][-1]["content"] == "sunny in Bergen"


def test_node_openai_zod_structured_output_is_parsed(seen: dict[str, Any]) -> None:
    assert seen["structured"] == {"name": "Ada", "age": 0, "tags": []}
    assert seen["responses_structured"] == {"name": "Grace", "age": 0, "tags": []}


def test_node_openai_responses_answer_and_stream(seen: dict[str, Any]) -> None:
    assert seen["responses"]["status"] == "completed"
    assert seen["responses"]["text"] == "echo: hello responses"
    stream = seen["responses_stream"]
    assert stream["text"] == "echo: streamed responses"
    assert stream["kinds"][0] == "response.created" and stream["kinds"][-1] == "response.completed"
    assert stream["kinds"].count("response.output_text.delta") == 3


def test_node_openai_bad_key_raises_authentication_error(seen: dict[str, Any]) -> None:
    assert seen["bad_key"] == {"status": 401, "type": "authentication_error", "code": "invalid_api_key"}


def test_node_openai_embeddings_decode_to_the_providers_vectors(seen: dict[str, Any]) -> None:
    assert seen["embeddings"] == {
        "vectors": [fake_vector("hello vectors", 8), fake_vector("two", 8)],
        "prompt_tokens": 3,
    }
    [sent] = [r["body"] for r in seen["fake_requests"] if r["path"] == "/v1/embeddings"]
    assert sent["encoding_format"] == "base64" and sent["model"] == "text-embedding-3-small"
