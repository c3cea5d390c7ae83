"""``POST /chat/completions``: parse, call the chat service, render."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from tunepipe.api.deps import Caller, State
from tunepipe.api.json import raw_json_response

router = APIRouter(tags=["chat"])

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/chat/completions")
async def create_chat_completion(request: Request, state: State, caller: Caller) -> Response:
    prepared = await state.chat.prepare(caller, await request.body(), request.headers)
    if prepared.request.stream:
        events = await state.chat.stream(caller, prepared)
        return StreamingResponse(events, media_type="text/event-stream", headers=_SSE_HEADERS)
    return raw_json_response(await state.chat.complete(caller, prepared))
