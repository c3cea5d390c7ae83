"""Anthropic's Messages API behind the gateway's OpenAI-shaped provider protocol.

Only transport lives here; every shape change is in :mod:`.translate`. Unlike
:class:`~tunepipe.providers.openai_compat.OpenAICompatProvider`, answers are re-encoded, so
:class:`~tunepipe.providers.base.Completion` never carries ``raw``.

A stream is read up to its first chunk before :meth:`AnthropicProvider.open_stream` returns:
Anthropic can answer 200 and then send an ``error`` event straight away (an overloaded model),
and that failure should reach the client as a status, not as a broken stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import aiohttp
import orjson
from httpx_sse import SSEError

from tunepipe.errors import UpstreamUnavailable
from tunepipe.providers.anthropic.translate import (
    StreamTranslator,
    to_anthropic_request,
    to_openai_completion,
)
from tunepipe.providers.base import Completion
from tunepipe.providers.http import guarded, open_response, post_json
from tunepipe.providers.legacy import as_function_call, asked_for_functions, legacy_chunks
from tunepipe.providers.sse import aiter_events

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    """One Anthropic endpoint (``base_url`` without ``/v1``)."""

    name = "Anthropic"

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, api_key: str | None) -> None:
        self._session = session
        self._url = f"{base_url.rstrip('/')}/v1/messages"
        self._api_key = api_key

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    async def complete(self, body: dict[str, Any]) -> Completion:
        """One non-streaming call. Raises :class:`tunepipe.errors.UpstreamError`."""
        request = to_anthropic_request(body)
        request.pop("stream", None)
        raw = await post_json(self._session, self._url, orjson.dumps(request), self._headers(), self.name)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(f"{self.name} returned a body that is not JSON") from exc
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise UpstreamUnavailable(f"{self.name} returned a body that is not a message")
        completion = to_openai_completion(data, body["model"])
        return Completion(data=as_function_call(completion) if asked_for_functions(body) else completion)

    async def open_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Start a streaming call; the usage-only chunk comes last only when the body's
        ``stream_options.include_usage`` asks for it, as with OpenAI."""
        request = to_anthropic_request(body)
        request["stream"] = True
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        translator = StreamTranslator(body["model"], include_usage=include_usage)
        headers = self._headers()
        headers["accept"] = "text/event-stream"
        resp = await open_response(self._session, self._url, orjson.dumps(request), headers, self.name)
        # guarded() is an async generator; it releases the response when it ends or is closed.
        chunks = cast(
            AsyncGenerator[dict[str, Any], None], guarded(self._chunks(resp, translator), self.name, resp)
        )
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            raise UpstreamUnavailable(f"{self.name} closed the stream before sending anything") from None
        stream = _prepend(first, chunks)
        return legacy_chunks(stream) if asked_for_functions(body) else stream

    async def _chunks(
        self, resp: aiohttp.ClientResponse, translator: StreamTranslator
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async for event in aiter_events(resp):
                if not event.data:
                    continue
                try:
                    data = orjson.loads(event.data)
                except orjson.JSONDecodeError as exc:
                    raise UpstreamUnavailable(f"{self.name} sent an event that is not JSON") from exc
                if not isinstance(data, dict):
                    raise UpstreamUnavailable(f"{self.name} sent an event that is not an object")
                for chunk in translator.feed(event.event if event.event != "message" else "", data):
                    yield chunk
        except SSEError as exc:
            raise UpstreamUnavailable(f"{self.name} did not answer with an event stream: {exc}") from exc


async def _prepend(
    first: dict[str, Any], rest: AsyncGenerator[dict[str, Any], None]
) -> AsyncGenerator[dict[str, Any], None]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        # A consumer that stops early closes this generator; pass that on so the response is
        # released now rather than whenever the inner generator is collected.
        await rest.aclose()
