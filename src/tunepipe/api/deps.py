"""Request dependencies, named as nouns: ``State``, ``Caller``, ``Writer``, ``AdminDep``.

``Caller`` and ``Writer`` are a project's keys (an admin key is refused: it belongs to no
project); ``AdminDep`` guards installation-wide operations (projects, base models, settings
shared by every project) and refuses every project key with ``admin_required``; ``KeyHolder``
is anyone with a valid key, for reads whose answer depends on who asks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tunepipe.domain.projects import Admin, Principal
from tunepipe.services.container import Container


def app_state(request: Request) -> Container:
    state: Container = request.app.state.tp
    return state


# Every dependency is `async def`, even one that never awaits: FastAPI runs a plain `def`
# dependency on a worker thread, which costs a thread hop (and a GIL hand-off) per request.
async def _state(request: Request) -> Container:
    return app_state(request)


async def _caller(request: Request) -> Principal:
    return await app_state(request).auth.principal(request.headers.get("authorization"))


async def _writer(request: Request) -> Principal:
    return await app_state(request).auth.writer(request.headers.get("authorization"))


async def _admin(request: Request) -> Admin:
    return await app_state(request).auth.admin(request.headers.get("authorization"))


async def _holder(request: Request) -> Principal | Admin:
    return await app_state(request).auth.holder(request.headers.get("authorization"))


State = Annotated[Container, Depends(_state)]
Caller = Annotated[Principal, Depends(_caller)]
"""Any valid key of a project."""
Writer = Annotated[Principal, Depends(_writer)]
"""A read/write key (write operations)."""
AdminDep = Annotated[Admin, Depends(_admin)]
"""An admin key (installation-wide operations); a project's key gets 403 ``admin_required``."""
KeyHolder = Annotated[Principal | Admin, Depends(_holder)]
"""Any valid key, a project's or an administrator's."""
