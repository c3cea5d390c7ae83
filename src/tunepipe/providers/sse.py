"""Server-sent events read off an aiohttp response, decoded by ``httpx-sse``.

The upstream client is aiohttp (it measured ~12x the throughput of httpx here); httpx-sse's
decoder only needs ``headers`` and ``aiter_text()``, which this adapter provides.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
from httpx_sse import EventSource, ServerSentEvent


class _TextSource:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.headers = response.headers
        self._response = response

    async def aiter_text(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self._response.content.iter_any():
            text = decoder.decode(chunk)
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail


def aiter_events(response: aiohttp.ClientResponse) -> AsyncIterator[ServerSentEvent]:
    """The events of an SSE response, in order (raises ``httpx_sse.SSEError`` on a non-SSE body)."""
    return EventSource(cast(Any, _TextSource(response))).aiter_sse()
