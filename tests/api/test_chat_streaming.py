"""Streaming ``POST /chat/completions``: chunks are relayed as they arrive, usage only when asked,
and a failure after the first byte ends the stream with exactly one error event.

Read both through the ``openai`` SDK and as raw SSE lines with ``httpx``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from conftest import FakeProvider, Gateway


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def _sse_lines(gateway: Gateway, body: dict[str, Any]) -> list[str]:
    """The non-empty lines of a streamed answer, read raw."""
    with (
        gateway.http() as h,
        h.stream("POST", "/chat/completions", json={**body, "stream": True}) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return [line for line in r.iter_lines() if line]


def test_stream_chunks_concatenate_to_the_answer(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    stream = gateway.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"alpha beta {m}"}], stream=True
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"echo: alpha beta {m}"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    # The upstream is always asked for usage so that the streamed call is logged with tokens.
    assert fake_provider.last()["body"]["stream_options"] == {"include_usage": True}
    logged = gateway.wait_for_log(m)
    assert logged["statusCode"] == 200
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: alpha beta {m}"


def test_stream_without_include_usage_sends_no_usage(gateway: Gateway) -> None:
    lines = _sse_lines(gateway, {"model": "gpt-4o", "messages": [{"role": "user", "content": "a b"}]})
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(line.startswith("data: ") for line in lines)
    assert all(e["choices"] for e in events)
    assert not any("usage" in e for e in events)


def test_stream_include_usage_ends_with_usage_chunk(gateway: Gateway) -> None:
    stream = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)


def test_stream_tool_call_deltas_assemble_to_a_call(gateway: Gateway) -> None:
    stream = gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather in Oslo"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        stream=True,
    )
    name, arguments, ids = "", "", []
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                assert call.index == 0
                ids += [call.id] if call.id else []
                name += (call.function.name or "") if call.function else ""
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert ids == ["call_0"]
    assert name == "get_weather"
    assert json.loads(arguments) == {"echo": "weather in Oslo"}
    assert finish == "tool_calls"


def test_stream_forwards_each_upstream_chunk_as_its_own_event(gateway: Gateway) -> None:
    words = "w1 w2 w3 w4 w5 w6"
    lines = _sse_lines(gateway, {"model": "gpt-4o", "messages": [{"role": "user", "content": words}]})
    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in lines[:-1]]
    # role chunk, one chunk per word of "echo: w1 … w6", finish chunk: nothing merged or split.
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d.get("content") for d in deltas[1:-1]] == ["echo:", " w1", " w2", " w3", " w4", " w5", " w6"]
    assert deltas[-1] == {}


def test_stream_midstream_failure_raises_api_error_in_sdk(gateway: Gateway) -> None:
    m = _marker()
    stream = gateway.client().chat.completions.create(
        model="fail-midstream", messages=[{"role": "user", "content": f"{m} never finished"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:
            received += [c.delta.content or "" for c in chunk.choices]
    assert "upstream exploded" in exc.value.message
    assert "".join(received) == f"echo: {m}"
    logged = gateway.wait_for_log(m)
    assert "upstream exploded" in logged["errorMessage"]


def test_stream_midstream_failure_sends_one_error_event_and_no_done(gateway: Gateway) -> None:
    lines = _sse_lines(
        gateway, {"model": "fail-midstream", "messages": [{"role": "user", "content": "x y z"}]}
    )
    events = [json.loads(line.removeprefix("data: ")) for line in lines if line != "data: [DONE]"]
    assert "data: [DONE]" not in lines
    errors = [e for e in events if "error" in e]
    assert len(errors) == 1 and errors[0] is events[-1]
    assert "upstream exploded" in errors[0]["error"]["message"]
    assert errors[0]["error"]["type"]
    assert errors[0]["message"] == errors[0]["error"]["message"]
    assert len(events) == 4  # role chunk, "echo:", " x", the error


def test_stream_slow_upstream_still_streams(gateway: Gateway) -> None:
    started = time.monotonic()
    stream = gateway.client().chat.completions.create(
        model="slow-300", messages=[{"role": "user", "content": "late"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: late"
    assert time.monotonic() - started >= 0.3


def test_stream_upstream_rejection_before_first_byte_is_a_status(gateway: Gateway) -> None:
    with pytest.raises(openai.RateLimitError) as exc:
        gateway.client().chat.completions.create(
            model="fail-429", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert exc.value.status_code == 429
    assert "fake failure 429" in exc.value.message


# ---------------------------------------------------------------- real-time relay


class _GatedHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream that sends one chunk, then waits for the test's go."""

    server: _GatedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _event(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-gated",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gated",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(self._event({"role": "assistant", "content": "first"}))
        self.wfile.flush()
        self.server.release.wait(10)
        self.wfile.write(self._event({"content": " second"}) + self._event({}, "stop") + b"data: [DONE]\n\n")
        self.wfile.flush()


class _GatedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GatedHandler)
        self.release = threading.Event()


@pytest.fixture
def gated_upstream(gateway: Gateway) -> Iterator[tuple[str, threading.Event]]:
    """A registered external provider whose stream stalls after its first chunk."""
    server = _GatedServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    slug = f"gated-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        r = h.post(
            "/external-providers", json={"slug": slug, "baseUrl": f"http://127.0.0.1:{server.server_port}/v1"}
        )
        assert r.status_code == 201, r.text
        try:
            yield f"openpipe:{slug}/gated", server.release
        finally:
            server.release.set()
            h.delete(f"/external-providers/{slug}")
            server.shutdown()
            server.server_close()


def test_stream_first_chunk_arrives_before_upstream_finishes(
    gateway: Gateway, gated_upstream: tuple[str, threading.Event]
) -> None:
    model, release = gated_upstream
    body = {"model": model, "messages": [{"role": "user", "content": "go"}], "stream": True}
    timeout = httpx.Timeout(10, read=5)
    with (
        httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.key}"}) as h,
        h.stream("POST", "/chat/completions", json=body, timeout=timeout) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        first = next(line for line in lines if line)
        # The upstream is still holding the rest back: this chunk was relayed, not buffered.
        assert not release.is_set()
        assert json.loads(first[6:])["choices"][0]["delta"]["content"] == "first"
        release.set()
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"
    assert json.loads(rest[0][6:])["choices"][0]["delta"]["content"] == " second"
