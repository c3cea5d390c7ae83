"""simonw's ``llm`` with tunepipe registered as OpenAI-compatible models in
``extra-openai-models.yaml`` (in a temporary ``LLM_USER_PATH``): the ``llm`` command line and the
Python API — a prompt, a stream, tools and a tool chain, schemas, the async model and a model on
the Responses API.

The client runs in the ecosystem virtualenv (``ecosystem_python``) as a subprocess against the
live server.
"""

from __future__ import annotations

import json
import os
import subprocess
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
def llm_home(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of an ``llm`` whose user directory registers tunepipe's models."""
    home = tmp_path_factory.mktemp("llm-home")
    # As a user would write it by hand: one entry per model, all at tunepipe's /v1.
    entry = "- model_id: {id}\n  model_name: '{name}'\n  api_base: '{base}'\n  api_key_name: tunepipe\n"
    base = f"{gateway.root}/v1"
    (home / "extra-openai-models.yaml").write_text(
        entry.format(id="tunepipe-echo", name=MODEL, base=base)
        + "  supports_tools: true\n  supports_schema: true\n"
        + entry.format(id="tunepipe-agent", name=AGENT, base=base)
        + "  supports_tools: true\n"
        + entry.format(id="tunepipe-responses", name=MODEL, base=base)
        + "  responses: true\n"
    )
    (home / "keys.json").write_text(json.dumps({"tunepipe": gateway.key}))
    return {"LLM_USER_PATH": str(home)}


@pytest.fixture(scope="module")
def seen(fake_provider: FakeProvider, ecosystem_python: Path, llm_home: dict[str, str]) -> dict[str, Any]:
    fake_provider.clear()
    out = run_json([ecosystem_python, HERE / "llm_client.py"], env=llm_home)
    out["fake_requests"] = fake_provider.requests()
    return out


def _llm(ecosystem_python: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        # ``-m``: the virtualenv was built elsewhere and moved, so its console scripts' shebangs
        # name a directory that no longer exists.
        [str(ecosystem_python), "-m", "llm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_llm_cli_prompts_tunepipe(gateway: Gateway, ecosystem_python: Path, llm_home: dict[str, str]) -> None:
    assert _llm(ecosystem_python, llm_home, "-m", "tunepipe-echo", "hello from the llm cli") == (
        "echo: hello from the llm cli"
    )
    [logged] = logged_calls(gateway, "hello from the llm cli")
    assert logged["model"] == MODEL and logged["streamed"] is True  # the CLI streams by default
    assert json.loads(
        _llm(ecosystem_python, llm_home, "-m", "tunepipe-echo", "--schema", "name, age int", "Ada")
    ) == {
        "name": "Ada",
        "age": 0,
    }
    tool = 'def get_weather(city: str) -> str:\n    return f"sunny in {city}"\n'
    assert _llm(ecosystem_python, llm_home, "-m", "tunepipe-agent", "--functions", tool, "Bergen") == (
        "tool said: sunny in Bergen"
    )


def test_llm_python_prompt_and_stream(seen: dict[str, Any]) -> None:
    assert seen["prompt"] == {"text": "echo: hello from llm", "input": 3, "output": 4}
    assert seen["stream"] == ["echo:", " streamed", " from", " llm"]
    assert seen["async"] == "echo: async llm"
    assert seen["astream"] == ["echo:", " async", " stream"]


def test_llm_tools_are_called_and_chained(seen: dict[str, Any]) -> None:
    assert seen["tool_calls"] == [{"name": "get_weather", "arguments": {"echo": "weather in Oslo"}}]
    assert seen["chain"] == "tool said: sunny in Bergen"
    sent = [
        r["body"] for r in seen["fake_requests"] if r["body"] and r["body"].get("model") == "tool-then-answer"
    ]
    assert sent[-1]["messages"][-1]["role"] == "tool"
    assert sent[-1]["messages"][-1]["content"] == "sunny in Bergen"


def test_llm_schema_gets_an_instance(seen: dict[str, Any]) -> None:
    assert seen["schema"] == {"name": "Ada", "age": 0}
    assert seen["schema_dsl"] == {"name": "Grace", "age": 0}


def test_llm_responses_model_answers(seen: dict[str, Any]) -> None:
    assert seen["responses"] == "echo: hello responses"
