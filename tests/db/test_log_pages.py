"""What the web UI's Request Logs pages ask of the log queries, on SQLite and Postgres: paging
back towards the newest calls by cursor (ties broken by id, filters kept) and editing one call's
metadata, inside its project only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from conftest import migrated_engine
from tunepipe.db.log_queries import decode_cursor, encode_cursor, get_call, list_calls, update_call_metadata
from tunepipe.db.log_rows import write_records
from tunepipe.db.projects import create_project
from tunepipe.domain.logs import LogFilter, LogRecord

T0 = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connection]:
    for engine in migrated_engine(request.param, tmp_path):
        with engine.begin() as connection:
            yield connection


def rec(project_id: str, at: int, **kw: Any) -> LogRecord:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": project_id,
        "requested_at": at,
        "received_at": at + 10,
        "model": "gpt-4o",
        "status_code": 200,
        "source": "report",
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"m {at}"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "ok"}}]},
    }
    values.update(kw)
    return LogRecord(**values)


def test_list_calls_newer_walks_back_to_the_newest_page(conn: Connection) -> None:
    project = create_project(conn, "pages").id
    records = [rec(project, T0 + i // 2, model="a" if i % 3 else "b") for i in range(12)]  # ties in pairs
    write_records(conn, records)
    f = LogFilter(model="a")
    newest_first = [
        r.id for r in sorted(records, key=lambda r: (r.requested_at, r.id), reverse=True) if r.model == "a"
    ]

    first, cursor = list_calls(conn, project, f, limit=3)
    assert [c.id for c in first] == newest_first[:3] and cursor is not None
    second, _ = list_calls(conn, project, f, after=decode_cursor(cursor), limit=3)
    assert [c.id for c in second] == newest_first[3:6]
    # From the second page's first call, one page newer is the first page, oldest first, and
    # there is nothing newer beyond it.
    back, more = list_calls(
        conn, project, f, after=(second[0].requested_at, second[0].id), limit=3, newer=True
    )
    assert [c.id for c in back][::-1] == newest_first[:3] and more is None
    back, more = list_calls(
        conn, project, f, after=(second[-1].requested_at, second[-1].id), limit=2, newer=True
    )
    assert [c.id for c in back][::-1] == newest_first[3:5] and more is not None
    assert decode_cursor(encode_cursor(T0, first[0].id)) == (T0, first[0].id)


def test_update_call_metadata_sets_and_deletes_within_its_project(conn: Connection) -> None:
    mine = create_project(conn, "mine").id
    theirs = create_project(conn, "theirs").id
    call = rec(mine, T0, metadata={"env": "prod", "keep": "1"})
    write_records(conn, [call])
    assert update_call_metadata(conn, mine, call.id, {"env": "dev", "keep": None, "new": "x"})
    got = get_call(conn, mine, call.id)
    assert got is not None and got.metadata == {"env": "dev", "new": "x"}
    assert not update_call_metadata(conn, theirs, call.id, {"env": "stolen"})
    assert not update_call_metadata(conn, mine, "no-such-call", {"env": "x"})
    got = get_call(conn, mine, call.id)
    assert got is not None and got.metadata == {"env": "dev", "new": "x"}
