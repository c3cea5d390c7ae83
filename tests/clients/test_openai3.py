"""The Responses API with clients newer than the pinned SDK: openai 3.x and the OpenAI Agents
SDK, which cannot share the test virtualenv (openpipe pins openai<=1.97.1).

The ``openai3_python`` fixture (``conftest.py``, ``venvs.py``) builds a virtualenv from
``openai3-requirements.txt`` once, cached under ``.cache/clients/`` by the file's hash, and the
client script runs in it as a subprocess against the live server. The test is skipped only when
the package index cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import FakeProvider, Gateway

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_openai3_and_agents_sdk_drive_the_responses_api(
    gateway: Gateway, fake_provider: FakeProvider, openai3_python: Path
) -> None:
    fake_provider.clear()
    done = subprocess.run(
        [
            str(openai3_python),
            str(HERE / "openai3_client.py"),
            f"{gateway.root}/v1",
            gateway.key,
            "gemini:gemini-2.0-flash",
            "gemini:tool-then-answer",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["openai_version"].startswith("3.")
    assert out["create"]["status"] == "completed" and out["create"]["text"] == "echo: hello from openai 3"
    assert out["retrieve"] == out["create"]["text"]
    assert out["stream"]["text"] == "echo: streamed words"
    assert (
        out["stream"]["kinds"][0] == "response.created" and out["stream"]["kinds"][-1] == "response.completed"
    )
    assert "response.output_text.delta" in out["stream"]["kinds"]
    # The agent loop: the model asked for the tool, the SDK ran it, the model answered with it.
    assert out["agent"]["final_output"] == "tool said: sunny in Oslo"
    assert out["agent"]["items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert out["agent_streamed"]["final_output"] == "tool said: sunny in Bergen"
    assert "run_item_stream_event" in out["agent_streamed"]["events"]
    sent = [r["body"] for r in fake_provider.requests() if r["body"].get("model") == "tool-then-answer"]
    assert sent[1]["messages"][-1]["role"] == "tool"
    assert sent[1]["messages"][-1]["content"] == "sunny in Oslo"
    assert sent[1]["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"
