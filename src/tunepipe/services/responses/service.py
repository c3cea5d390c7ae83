"""``POST /responses`` and the stored responses it keeps.

A call to an OpenAI model is passed through to OpenAI (:mod:`.passthrough`), unless it continues
a response stored here. Any other model is answered through the chat pipeline, so routing,
fallbacks, the cache, criteria, rate limits and logging apply as to a chat call: the body is
translated (:func:`~tunepipe.protocol.responses.chat_body`) after the stored conversation it
continues, prepared and run by :class:`~tunepipe.services.gateway.chat.ChatService`, and its
answer translated back, as one object or as Responses events (:mod:`.stream`).

A response is stored unless ``store`` is false, before the client sees it complete (so a
``GET`` right after finds it), with the conversation so far as chat messages: a follow-up call
with ``previous_response_id`` continues from there, in the same project only. A response
OpenAI made is only marked as the project's; reading, listing and deleting it are relayed to
OpenAI, and another project's key cannot reach it (projects may share the operator's OpenAI
key, so OpenAI could not tell them apart).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from tunepipe.db import stored_responses as repo
from tunepipe.db.database import Database
from tunepipe.domain.clock import now_ms
from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, NotFound, TunepipeError, UpstreamRejected
from tunepipe.protocol.responses import (
    ResponsesRequest,
    assistant_message,
    chat_body,
    ending,
    input_items,
    new_id,
    output_of,
    response_object,
    usage_of,
)
from tunepipe.services.gateway.chat import ChatService, StreamEvent, StreamFailed
from tunepipe.services.gateway.requests import read_call
from tunepipe.services.logs.recording import RequestLogger
from tunepipe.services.responses.passthrough import OpenAIResponses, RawEvent
from tunepipe.services.responses.stream import EventTranslator

# Routes whose upstream takes chat's `verbosity` (OpenAI's models and compatible servers).
_VERBOSITY_KINDS = frozenset({RouteKind.OPENAI, RouteKind.EXTERNAL})


@dataclass(slots=True)
class Created:
    """A whole response: the object, or an upstream's own bytes (``raw``)."""

    data: dict[str, Any] | None
    raw: bytes | None
    headers: dict[str, str]


@dataclass(slots=True)
class Events:
    """A streamed response: Responses events (dicts), or an upstream's own (:class:`RawEvent`)."""

    events: AsyncIterator[dict[str, Any] | RawEvent]
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Turn:
    """One call's place in its conversation."""

    req: ResponsesRequest
    response_id: str
    created_at: int
    history: list[dict[str, Any]]
    added: list[dict[str, Any]]


class ResponsesService:
    def __init__(
        self, chat: ChatService, db: Database, openai: OpenAIResponses, logger: RequestLogger
    ) -> None:
        self._chat = chat
        self._db = db
        self._openai = openai
        self._logger = logger

    async def create(self, principal: Principal, raw: bytes, headers: Mapping[str, str]) -> Created | Events:
        # Read as chat's calls are, so a refused one is logged as theirs are (the body as sent).
        call, body, req, _ = await read_call(
            self._logger, principal, raw, headers, ResponsesRequest, endpoint="responses"
        )
        kind = parse_model(req.model).kind
        try:
            previous = await self._previous(principal, req, kind)
            passthrough = kind is RouteKind.OPENAI and (previous is None or bool(previous.get("passthrough")))
            if not passthrough:
                if previous is not None and previous.get("passthrough"):
                    raise InvalidRequest(
                        f"Response '{req.previous_response_id}' was made and is stored by OpenAI: "
                        "only an OpenAI model can continue it",
                        param="previous_response_id",
                    )
                assert previous is None or "messages" in previous
                history = list(previous["messages"]) if previous is not None else []
                chat, added = chat_body(req, history, verbosity=kind in _VERBOSITY_KINDS)
        except TunepipeError as exc:  # refused before the call is handed on: logged here
            await self._logger.failure(call, exc)
            raise
        if passthrough:

            async def remember(response: dict[str, Any]) -> None:
                await self._remember(principal, req, response)

            if req.stream:
                events, out_headers = await self._openai.stream(principal, req, body, headers, remember)
                return Events(events, out_headers)
            answer, out_headers = await self._openai.create(principal, req, body, headers, remember)
            return Created(None, answer, out_headers)
        prepared = await self._chat.prepare(principal, orjson.dumps(chat), headers, endpoint="responses")
        turn = _Turn(req, new_id("resp"), int(time.time()), history, added)
        if req.stream:
            streamed = await self._chat.stream(principal, prepared)
            return Events(self._events(principal, turn, streamed.events), streamed.headers)
        completion = await self._chat.complete(principal, prepared)
        output, reason = output_of(completion.data)
        status, details = ending(reason)
        data = response_object(
            req,
            response_id=turn.response_id,
            created_at=turn.created_at,
            status=status,
            output=output,
            usage=usage_of(completion.data.get("usage")),
            incomplete_details=details,
        )
        await self._keep(principal, turn, data)
        return Created(data, None, completion.headers)

    async def _previous(
        self, principal: Principal, req: ResponsesRequest, kind: RouteKind
    ) -> dict[str, Any] | None:
        """The stored response ``previous_response_id`` names. An id another project made is
        unknown to this one; an id nobody made here may be OpenAI's own (then only an OpenAI
        model may use it, and OpenAI decides)."""
        if req.previous_response_id is None:
            return None
        owner = await self._db.run(repo.owner, req.previous_response_id)
        if owner == principal.project.id:
            return await self._db.run(repo.get, principal.project.id, req.previous_response_id)
        if owner is not None or kind is not RouteKind.OPENAI:
            raise NotFound(
                f"Previous response with id '{req.previous_response_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return None

    async def _remember(self, principal: Principal, req: ResponsesRequest, response: dict[str, Any]) -> None:
        """Mark a response OpenAI stores as this project's."""
        response_id = response.get("id")
        if req.store is False or not isinstance(response_id, str):
            return
        marker = {"passthrough": True}
        await self._db.run(repo.save, principal.project.id, response_id, req.model, marker, now_ms())

    async def _events(
        self, principal: Principal, turn: _Turn, chunks: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[dict[str, Any] | RawEvent]:
        translator = EventTranslator(turn.req, turn.response_id, turn.created_at)
        try:
            for event in translator.start():
                yield event
            async for chunk in chunks:
                if isinstance(chunk, StreamFailed):
                    for event in translator.fail(chunk.error.message):
                        yield event
                    return
                for event in translator.feed(chunk):
                    yield event
            closing = translator.finish()
            if translator.final is not None:
                await self._keep(principal, turn, translator.final)
            for event in closing:
                yield event
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _keep(self, principal: Principal, turn: _Turn, response: dict[str, Any]) -> None:
        if turn.req.store is False:
            return
        answer = assistant_message(response["output"])
        body = {
            "response": response,
            "messages": [*turn.history, *turn.added, *([answer] if answer else [])],
            "input_items": input_items(turn.req.input),
        }
        await self._db.run(repo.save, principal.project.id, turn.response_id, turn.req.model, body, now_ms())

    async def _stored(self, principal: Principal, response_id: str) -> dict[str, Any]:
        found = await self._db.run(repo.get, principal.project.id, response_id)
        if found is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return found

    async def get(self, principal: Principal, response_id: str) -> dict[str, Any] | bytes:
        """The stored response object (OpenAI's own bytes for one OpenAI stores)."""
        found = await self._stored(principal, response_id)
        if found.get("passthrough"):
            return await self._openai.relay(principal, "GET", f"/responses/{response_id}")
        response: dict[str, Any] = found["response"]
        return response

    async def delete(self, principal: Principal, response_id: str) -> dict[str, Any] | bytes:
        found = await self._stored(principal, response_id)
        answer: dict[str, Any] | bytes = {"id": response_id, "object": "response.deleted", "deleted": True}
        if found.get("passthrough"):
            try:
                answer = await self._openai.relay(principal, "DELETE", f"/responses/{response_id}")
            except UpstreamRejected as exc:
                if exc.status_code == 404:  # gone at OpenAI already: forget it here too
                    await self._db.run(repo.delete_one, principal.project.id, response_id)
                raise
        if not await self._db.run(repo.delete_one, principal.project.id, response_id):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return answer

    async def input_items(
        self, principal: Principal, response_id: str, *, order: str, limit: int, after: str | None
    ) -> dict[str, Any] | bytes:
        """A page of the input a stored response was given (OpenAI's list shape)."""
        found = await self._stored(principal, response_id)
        if found.get("passthrough"):
            query = urlencode({"order": order, "limit": limit, **({"after": after} if after else {})})
            return await self._openai.relay(principal, "GET", f"/responses/{response_id}/input_items", query)
        items: list[dict[str, Any]] = list(found.get("input_items") or [])
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item.get("id") for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
