"""A bad day upstream, through a real server whose read timeout is one second: a provider that
stalls before answering, one that stalls or drops the connection mid-stream, and one that
answers 5xx or 429. Each call ends promptly with a clear error, and each is logged with the
status the caller saw and, for streams, the text that had arrived. SIGTERM lets a call in
flight finish and keeps its log."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from conftest import FakeProvider, Gateway, _start, base_env, free_port, own_gateway

pytestmark = pytest.mark.slow

READ_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def impatient(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("faults")
    with own_gateway(fake_provider, home, TUNEPIPE_UPSTREAM_TIMEOUT_S=str(READ_TIMEOUT_S)) as gw:
        yield gw


def _log(gw: Gateway, marker: str) -> dict[str, Any]:
    return gw.wait_for_log(marker, timeout_s=10)


def _stream(gw: Gateway, model: str, marker: str) -> tuple[str, Exception | None, float]:
    """The text a streamed call delivered, the error that ended it (if any), and how long it took."""
    text, error = "", None
    started = time.monotonic()
    try:
        stream = gw.client().chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"one two three {marker}"}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
    except (openai.APIError, httpx.HTTPError) as exc:
        error = exc
    return text, error, time.monotonic() - started


def test_upstream_stall_before_answer_is_a_logged_504(impatient: Gateway) -> None:
    marker = uuid.uuid4().hex
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        impatient.client().chat.completions.create(
            model="slow-5000", messages=[{"role": "user", "content": marker}]
        )
    assert caught.value.status_code == 504 and time.monotonic() - started < 4
    assert caught.value.body is not None
    log = _log(impatient, marker)
    assert log["statusCode"] == 504 and log["errorMessage"]


@pytest.mark.parametrize("model", ["stall-midstream", "cut-midstream"])
def test_upstream_dies_midstream_ends_the_stream_and_logs_the_partial_text(
    impatient: Gateway, model: str
) -> None:
    marker = uuid.uuid4().hex
    text, error, took = _stream(impatient, model, marker)
    # Both words that arrived reached the caller, then an error ended the stream promptly.
    assert text.startswith("echo: one"), text
    assert error is not None and took < 5, (error, took)
    log = _log(impatient, marker)
    assert log["statusCode"] >= 500 and log["errorMessage"]
    answered = str(log.get("respPayload"))
    assert "echo: one" in answered, log


# A provider's 5xx is the gateway's 502 (naming the provider's status); its 429 passes through.
@pytest.mark.parametrize(("model", "status"), [("fail-500", 502), ("fail-503", 502), ("fail-429", 429)])
def test_upstream_error_status_reaches_the_caller_and_the_log(
    impatient: Gateway, model: str, status: int
) -> None:
    marker = uuid.uuid4().hex
    with pytest.raises(openai.APIStatusError) as caught:
        impatient.client().chat.completions.create(
            model=model, messages=[{"role": "user", "content": marker}]
        )
    assert caught.value.status_code == status
    assert model.removeprefix("fail-") in str(caught.value.body)
    assert _log(impatient, marker)["statusCode"] == status


def test_sigterm_lets_the_call_in_flight_finish_and_keeps_its_log(
    fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("drain")
    env = base_env(home, fake_provider, None)
    env["TUNEPIPE_API_KEY"] = key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    gw = Gateway(backend="sqlite", root="", key=key, read_only_key="", env=env, home=home)
    port = free_port()
    gw.root = f"http://127.0.0.1:{port}"
    proc = _start(env, port)
    marker = uuid.uuid4().hex
    answers: list[str | None] = []

    def call() -> None:
        r = gw.client().chat.completions.create(
            model="slow-1500-gpt-4o-mini", messages=[{"role": "user", "content": marker}]
        )
        answers.append(r.choices[0].message.content)

    caller = threading.Thread(target=call)
    try:
        caller.start()
        time.sleep(0.5)  # the call is with the provider
        proc.send_signal(signal.SIGTERM)
        caller.join(30)
        assert answers == [f"echo: {marker}"]
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Restarted on the same home: the answered call was logged before the server stopped.
    gw.process = _start(env, port)
    try:
        assert _log(gw, marker)["statusCode"] == 200
    finally:
        gw.process.terminate()
        gw.process.wait(30)
