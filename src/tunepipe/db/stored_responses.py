"""Stored Responses API objects: what ``previous_response_id`` continues and ``GET
/responses/{id}`` returns.

A row's body is zlib-compressed JSON ``{"response", "messages", "input_items"}``: the response
object as the client got it, the conversation so far as chat messages (output included,
instructions not: they never carry over), and the input as listed by ``input_items``. A
response OpenAI made and stores itself (a passed-through call) leaves only a marker,
``{"passthrough": true}``, recording which project it belongs to. Every query is scoped by
project except :func:`owner`.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select

from tunepipe.db.schema import stored_responses


def save(
    conn: Connection, project_id: str, response_id: str, model: str, body: dict[str, Any], now: int
) -> None:
    conn.execute(
        stored_responses.insert().values(
            id=response_id,
            project_id=project_id,
            model=model[:300],
            body=zlib.compress(orjson.dumps(body), 1),
            created_at=now,
        )
    )


def get(conn: Connection, project_id: str, response_id: str) -> dict[str, Any] | None:
    s = stored_responses.c
    blob = conn.execute(select(s.body).where(s.id == response_id, s.project_id == project_id)).scalar()
    if blob is None:
        return None
    body: dict[str, Any] = orjson.loads(zlib.decompress(blob))
    return body


def delete_one(conn: Connection, project_id: str, response_id: str) -> bool:
    s = stored_responses.c
    result = conn.execute(delete(stored_responses).where(s.id == response_id, s.project_id == project_id))
    return bool(result.rowcount)


def owner(conn: Connection, response_id: str) -> str | None:
    """The project a response id belongs to (to refuse another project's id without revealing
    anything about it)."""
    s = stored_responses.c
    found = conn.execute(select(s.project_id).where(s.id == response_id)).scalar()
    return str(found) if found is not None else None
