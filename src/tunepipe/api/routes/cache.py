"""The response cache's own endpoints (tunepipe's; OpenPipe had none): what a project has stored,
per model, and clearing it, all of it or one model's.

Clearing is a write, so it takes a read/write key; the counts are readable with any key. Both act
on the caller's project only, whichever store (database or Redis) holds the answers. ``model``
is the name the caller requested (``openpipe:my-model``, ``gpt-4o``), as the stats list it.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import Caller, State, Writer
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.protocol.answers_admin import CacheCleared, CacheStatsList

router = APIRouter(tags=["cache"])


@router.get("/cache", responses=answers(CacheStatsList))
async def cache_stats(state: State, caller: Caller) -> Response:
    """Live (unexpired) answers per model: count and bytes stored (compressed)."""
    stats = await state.cache.stats(caller)
    return json_response({"object": "list", "data": [asdict(s) for s in stats]})


@router.delete("/cache", responses=answers(CacheCleared))
async def clear_cache(state: State, caller: Writer, model: str | None = None) -> Response:
    """Delete the project's stored answers, or only those of ``model``."""
    return json_response({"deleted": await state.cache.clear(caller, model)})
