"""The Responses API with clients newer than the pinned SDK: openai 3.x and the OpenAI Agents
SDK, which cannot share the test virtualenv (openpipe pins openai<=1.97.1).

A session fixture builds a virtualenv from ``openai3-requirements.txt`` once, cached under
``.cache/clients/`` by the file's hash, and the client script runs in it as a subprocess
against the live server. The test is skipped only when the package index cannot be reached.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FakeProvider, Gateway

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REQUIREMENTS = HERE / "openai3-requirements.txt"


def _unreachable(output: str) -> bool:
    markers = (
        "Could not find a version",
        "No matching distribution",
        "NewConnectionError",
        "Network is unreachable",
    )
    return any(m in output for m in markers)


@pytest.fixture(scope="session")
def openai3_python() -> Path:
    """The interpreter of the cached openai 3.x virtualenv (built on first use)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    venv = ROOT / ".cache" / "clients" / f"openai3-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    # Built beside its final place and moved there whole, so that a concurrent or interrupted
    # build never leaves a half-installed environment behind the cache key.
    building = venv.with_name(f"{venv.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True, timeout=300)
    done = subprocess.run(
        [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        if _unreachable(done.stdout + done.stderr):
            pytest.skip(f"the package index is unreachable: {done.stderr.strip()[-300:]}")
        raise AssertionError(done.stdout[-3000:] + done.stderr[-3000:])
    (building / ".complete").touch()
    try:
        building.rename(venv)
    except OSError:  # another session finished first: use its environment
        shutil.rmtree(building, ignore_errors=True)
    return python


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
