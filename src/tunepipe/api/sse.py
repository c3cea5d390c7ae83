"""Server-sent events for streamed completions: each chunk as ``data: <json>``, then ``data:
[DONE]``; a stream that broke off ends with one error event instead (as OpenAI's does)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from tunepipe.services.gateway.chat import StreamEvent, StreamFailed

DONE = b"data: [DONE]\n\n"


async def sse(events: AsyncIterator[StreamEvent]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            if isinstance(event, StreamFailed):
                yield b"data: " + orjson.dumps(event.error.envelope()) + b"\n\n"
                return
            yield b"data: " + orjson.dumps(event) + b"\n\n"
        yield DONE
    finally:
        # A client that went away closes this generator; close the service's too, so the call is
        # logged (as cut short) now rather than whenever it is garbage-collected.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
