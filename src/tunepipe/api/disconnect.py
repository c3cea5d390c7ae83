"""Noticing that a client hung up while its answer was being made.

A non-streaming call holds no conversation with its client between reading the body and
sending the answer, so a client that times out or is killed goes unnoticed: the upstream call
runs on, is paid for and is logged as answered. :class:`HangUpWatch` listens to the ASGI
``receive`` channel meanwhile (the server reports ``http.disconnect`` there) and cancels the
task serving the request when the client goes; the cancellation reaches the upstream request,
which is dropped, and the service logs the call as 499 (client closed request).

One small task per call, parked on ``receive`` until the answer is ready: no polling. Every
gateway endpoint's non-streaming call is watched so (:func:`unless_gone`); each service logs the
cancellation the same way (:func:`~tunepipe.services.gateway.requests.log_unanswered`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive

from tunepipe.services.gateway.requests import CLIENT_CLOSED_REQUEST

T = TypeVar("T")


class HangUpWatch:
    """``async with HangUpWatch(receive) as watch:`` cancels the current task if the client
    disconnects inside the block, and turns that cancellation into ``watch.hung_up`` (the block
    is left, nothing is raised). Only for use after the request body has been read whole."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._open = False
        self.hung_up = False

    async def __aenter__(self) -> HangUpWatch:
        self._task = asyncio.current_task()
        self._open = True
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if self._open and self._task is not None:
            self.hung_up = True
            self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self._open = False
        if self._watcher is not None:
            self._watcher.cancel()
        if self.hung_up and self._task is not None and self._task.uncancel() == 0:
            # Our own cancellation (and no one else's): it ends here.
            return kind is None or issubclass(kind, asyncio.CancelledError)
        return False


async def unless_gone(receive: Receive, work: Awaitable[T]) -> T | None:
    """``await work`` under a :class:`HangUpWatch`: its result, or ``None`` when the client hung
    up (``work`` was cancelled, and its service logged the call as 499). Create ``work`` after
    reading the request body: ``unless_gone(request.receive, service.create(await
    request.body()))``. A call that turns out to stream is watched only until its stream
    opens."""
    async with HangUpWatch(receive) as watch:
        result = await work
    return None if watch.hung_up else result


def gone() -> Response:
    """The response to a client that hung up (nobody reads it; it is what the access log shows)."""
    return Response(status_code=CLIENT_CLOSED_REQUEST)
