"""The one protocol every provider implements, and the values it exchanges.

A provider turns an OpenAI-shaped chat request (``model`` already set to the upstream's own
name) into an OpenAI ``chat.completion`` or a stream of ``chat.completion.chunk`` dicts. It owns
wire translation and error mapping, never the database: the service decides where to send a
call and what to record about it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from tunepipe.domain.completions import Completion

__all__ = ["ChatProvider", "Completion"]


class ChatProvider(Protocol):
    async def complete(self, body: dict[str, Any]) -> Completion:
        """One non-streaming call. Raises :class:`tunepipe.errors.UpstreamError`."""
        ...

    async def open_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Start a streaming call. Failures before the first chunk raise here (so the client
        gets a proper status); failures later raise from the iterator."""
        ...
