"""AnthropicProvider against a fake Anthropic server speaking real HTTP on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tunepipe.errors import UpstreamError, UpstreamRejected
from tunepipe.providers.anthropic import AnthropicProvider

MODEL = "claude-sonnet-4-5"

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": MODEL,
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1},
}


def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


STREAM = [
    event("message_start", message={"id": "msg_2", "usage": {"input_tokens": 3}}),
    event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    event("ping"),
    event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
    event("content_block_stop", index=0),
    event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2}),
    event("message_stop"),
]

OVERLOADED = [event("error", error={"type": "overloaded_error", "message": "Overloaded"})]


@dataclass
class FakeAnthropic:
    """What the fake server saw, and what it should answer next."""

    url: str = ""
    requests: list[tuple[Mapping[str, str], dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=lambda: list(STREAM))


FAKE = web.AppKey("fake", FakeAnthropic)


async def _messages(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE]
    body = await request.json()
    fake.requests.append((request.headers.copy(), body))
    if fake.status != 200:
        error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad model"}}
        return web.json_response(error, status=fake.status)
    if not body.get("stream"):
        return web.json_response(MESSAGE)
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for name, data in fake.events:
        await resp.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
    await resp.write_eof()
    return resp


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    app = web.Application()
    app[FAKE] = fake
    app.router.add_post("/v1/messages", _messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    async with aiohttp.ClientSession() as session:
        yield AnthropicProvider(session, base_url=fake.url + "/", api_key="sk-ant-test")


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **fields}


async def test_anthropic_provider_complete_translates_both_ways(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    completion = await provider.complete(chat(stream=True))

    headers, body = fake.requests[0]
    assert headers["x-api-key"] == "sk-ant-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "stream" not in body
    assert body["max_tokens"] == 4096
    assert completion.raw is None
    assert completion.data["choices"][0]["message"]["content"] == "Hello"
    assert completion.data["usage"]["total_tokens"] == 4


async def test_anthropic_provider_stream_ends_with_usage_when_asked(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    chunks = [c async for c in await provider.open_stream(chat(stream_options={"include_usage": True}))]

    assert fake.requests[0][1]["stream"] is True
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]] == ["Hi"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 5


async def test_anthropic_provider_stream_without_usage_unless_asked(provider: AnthropicProvider) -> None:
    chunks = [c async for c in await provider.open_stream(chat(stream=True))]

    assert all(c["choices"] for c in chunks)


async def test_anthropic_provider_stream_error_before_first_chunk_raises_on_open(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.events = list(OVERLOADED)

    with pytest.raises(UpstreamError, match="Overloaded"):
        await provider.open_stream(chat())


async def test_anthropic_provider_stream_error_mid_stream_raises_from_iterator(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.events = STREAM[:4] + OVERLOADED
    stream = await provider.open_stream(chat())

    with pytest.raises(UpstreamError, match="Overloaded"):
        async for _ in stream:
            pass


async def test_anthropic_provider_rejection_keeps_status_and_message(
    fake: FakeAnthropic, provider: AnthropicProvider
) -> None:
    fake.status = 404

    with pytest.raises(UpstreamRejected) as exc:
        await provider.complete(chat())

    assert exc.value.status_code == 404
    assert exc.value.message == "bad model"
    assert exc.value.error_type == "invalid_request_error"
