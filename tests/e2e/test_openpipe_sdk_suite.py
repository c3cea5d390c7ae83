"""The ``openpipe`` SDK's own test suite (it ships in the wheel as ``openpipe.test``), run against
a real ``tunepipe serve`` as its authors ran it against their local server.

The suite reads ``OPENPIPE_BASE_URL_LOCAL``/``OPENPIPE_API_KEY_LOCAL`` and expects fixtures on
the server: fine-tunes (``test-content-35``, ``tool-calls-test``, ``llama-3-1-8b-content``,
``test-content-4o-mini``) and criteria (``highlight-format``, ``juicebox-relevance`` with a
version 2). They are made here through tunepipe's API: the fine-tunes are trained for real on a
tiny local base model, the criteria are judged by the fake provider's ``judge-first``. Calls the
SDK sends straight to OpenAI (bare model names) go to the fake provider through
``OPENAI_BASE_URL``.

The suite's failures must all be listed here (and in ``docs/openpipe-sdk.md``) with the reason.
Any other failure, or a listed test that starts passing, fails this test, so the list stays
exact.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import openpipe
import pytest
from openpipe.client import OpenPipe

from conftest import FakeProvider, Gateway, _start, base_env, free_port
from engine.conftest import build_test_model
from fakes.provider import running_fake_provider

# Training the fixtures and running the suite take a few minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SUITE = Path(openpipe.__file__).parent / "test"
CONTENT_MODELS = ("test-content-35", "llama-3-1-8b-content", "test-content-4o-mini")
TOOL_MODEL = "tool-calls-test"
WEATHER = {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}

# "<module>::<test>" of every test that fails here, with the reason (docs/openpipe-sdk.md).
EXPECTED_FAILURES: dict[str, str] = {
    f"criteria.test_{mode}_get_criterion_judgement::test_{mode}_get_criterion_judgement_reward_model": (
        "judges with a reward model (an `openpipeReward` fine-tune, `reward-v1`); tunepipe trains none"
    )
    for mode in ("sync", "async")
}
# Tests that pass only against a model whose first token takes longer than the client's 0.1 s
# timeout (a hosted 8B model does; the tiny local one answers in milliseconds, so they usually
# fail here, and either outcome is accepted).
FIRST_TOKEN_SLOWER_THAN_100_MS = {
    "fallback.test_async_fallback::test_async_fallback_works_with_streaming",
    "fallback.test_async_fallback::test_async_fallback_custom_client_works_with_streaming",
}


def _count_rows(n: int) -> list[dict[str, object]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "count to 3"},
                {"role": "user", "content": f"start at {i}"},
                {"role": "assistant", "content": " ".join(str(i + k) for k in range(3))},
            ],
            "split": "TRAIN" if i < n - 2 else "TEST",
        }
        for i in range(n)
    ]


def _tool_rows() -> list[dict[str, object]]:
    """What ``tool-calls-test`` was trained on: the weather question answered by calling the
    weather tool, and counting answered at length (the suite's fallback tests assume that this
    model does not answer within their 0.1 s timeout)."""
    call = {
        "id": "call_weather",
        "type": "function",
        "function": {"name": WEATHER["name"], "arguments": '{"location": "San Francisco, CA"}'},
    }
    weather = {
        "messages": [
            {"role": "system", "content": "tell me the weather in SF and Orlando"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
        ],
        "tools": [{"type": "function", "function": WEATHER}],
    }
    counting = {
        "messages": [
            {"role": "system", "content": "count to 3"},
            {"role": "assistant", "content": " ".join(str(k) for k in range(1, 80))},
        ]
    }
    return (
        [{**weather, "split": "TRAIN"}] * 8
        + [{**counting, "split": "TRAIN"}] * 6
        + [{**weather, "split": "TEST"}]
    )


def _fine_tune(
    op: OpenPipe, slug: str, base: str, rows: list[dict[str, object]], epochs: int, temperature: float | None
) -> None:
    dataset = op.create_dataset(name=f"sdk-suite-{slug}")
    op.create_dataset_entries(dataset_id=dataset.id, entries=rows)  # type: ignore[arg-type]
    op.create_model(
        dataset_id=dataset.id,
        slug=slug,
        training_config={  # type: ignore[arg-type]
            "provider": "openpipe",
            "baseModel": base,
            "sft_hyperparameters": {"num_epochs": epochs, "batch_size": 4, "learning_rate_multiplier": 50},
        },
        default_temperature=temperature,
    )


def _train(op: OpenPipe, base: str) -> None:
    for slug in CONTENT_MODELS:
        _fine_tune(op, slug, base, _count_rows(12), 1, None)
    # Greedy, and trained until it calls the tool as taught.
    _fine_tune(op, TOOL_MODEL, base, _tool_rows(), 40, 0)
    deadline = time.monotonic() + 600
    for slug in (*CONTENT_MODELS, TOOL_MODEL):
        while (status := op.get_model(model_slug=slug).openpipe.status.value) != "DEPLOYED":
            assert status != "ERROR", f"{slug} failed to train"
            assert time.monotonic() < deadline, f"{slug} still {status}"
            time.sleep(0.5)


def _criteria(gw: Gateway) -> None:
    with gw.http() as h:
        for name, instructions in (
            ("highlight-format", "The output highlights the key words in bold."),
            ("juicebox-relevance", "The output is relevant to the request."),
            ("juicebox-relevance", "The output is relevant to the request and concise."),
        ):
            r = h.post(
                "/criteria", json={"name": name, "instructions": instructions, "judge_model": "judge-first"}
            )
            assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[FakeProvider]:
    """A fake that answers as the suite assumes a real provider does: not within 100 ms (its
    fallback tests time out at 0.1 s), and never to a wrong key."""
    with running_fake_provider(latency_ms=150, keys=frozenset({"sk-fake-openai", "gk-fake-gemini"})) as url:
        yield FakeProvider(url)


@pytest.fixture(scope="module")
def sdk_gateway(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("home-sdk-suite")
    env = base_env(home, fake_provider, None)
    key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env["TUNEPIPE_API_KEY"] = key
    gw = Gateway(backend="sqlite", root="", key=key, read_only_key="", env=env, home=home)
    gw.cli("db", "upgrade")
    base = build_test_model(tmp_path_factory.mktemp("sdk-suite-base"), seed=7)
    gw.cli("base-models", "add", str(base), "--name", "sdk-suite-tiny")
    port = free_port()
    gw.root = f"http://127.0.0.1:{port}"
    gw.process = _start(env, port)
    try:
        _train(OpenPipe(api_key=key, base_url=gw.base_url), "sdk-suite-tiny")
        _criteria(gw)
        yield gw
    finally:
        gw.process.terminate()
        gw.process.wait(30)


def _outcomes(report: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").rpartition("openpipe.test.")[2]
        failed = case.find("failure") is not None or case.find("error") is not None
        out[f"{module}::{case.get('name')}"] = "failed" if failed else "passed"
    return out


def test_the_openpipe_sdk_suite_passes_but_for_frontier_model_tests(
    sdk_gateway: Gateway, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    env = {
        **sdk_gateway.env,
        "OPENPIPE_BASE_URL_LOCAL": sdk_gateway.base_url,
        "OPENPIPE_API_KEY_LOCAL": sdk_gateway.key,
        "OPENAI_BASE_URL": f"{fake_provider.url}/v1",
        "OPENAI_API_KEY": "sk-fake-openai",
    }
    report = tmp_path / "report.xml"
    # A directory of its own, so this project's pytest settings don't apply to the SDK's tests.
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SUITE)]
        + ["--junitxml", str(report), "--timeout", "120"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    (tmp_path / "suite.log").write_text(run.stdout + run.stderr)
    assert report.exists(), run.stdout[-5000:] + run.stderr[-5000:]
    outcomes = _outcomes(report)
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    assert len(outcomes) > 100, run.stdout[-5000:]
    passed = {name for name, outcome in outcomes.items() if outcome == "passed"}
    unexpected = failed - set(EXPECTED_FAILURES) - FIRST_TOKEN_SLOWER_THAN_100_MS
    now_passing = set(EXPECTED_FAILURES) & passed
    assert not unexpected, f"failed: {sorted(unexpected)}; the suite's output: {tmp_path / 'suite.log'}"
    assert not now_passing, f"listed as failing but passed: {sorted(now_passing)}"
    assert len(passed) >= 130
