"""Reading and relabelling logged calls on a real SQLite database: filters, cursor pages that
stay stable under ties, text search across pages, bulk metadata edits, project scoping."""

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.log_queries import decode_cursor, get_call, latest_call, list_calls, update_metadata
from tunepipe.db.log_rows import write_records
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.migrate import upgrade
from tunepipe.db.projects import create_project
from tunepipe.domain.logs import LogFilter, LogRecord
from tunepipe.services.logs.service import LogService

T0 = 1_700_000_000_000


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """One transaction for the whole test: the repositories run inside the caller's."""
    with engine.begin() as connection:
        yield connection


@pytest.fixture
def project(conn: Connection) -> str:
    return create_project(conn, "alpha").id


@pytest.fixture
def other_project(conn: Connection) -> str:
    return create_project(conn, "beta").id


def rec(project_id: str, at: int, **kw: Any) -> LogRecord:
    text = kw.pop("text", f"message {at}")
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": project_id,
        "requested_at": at,
        "received_at": at + 10,
        "model": "gpt-4o",
        "status_code": 200,
        "source": "report",
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "ok"}}]},
    }
    values.update(kw)
    return LogRecord(**values)


def walk(conn: Connection, project_id: str, f: LogFilter, limit: int) -> list[str]:
    ids: list[str] = []
    after = None
    for _ in range(100):
        page, cursor = list_calls(conn, project_id, f, after=after, limit=limit)
        ids.extend(c.id for c in page)
        if cursor is None or not page:
            return ids
        after = decode_cursor(cursor)
    raise AssertionError("pagination did not end")


def test_list_calls_newest_first_with_ties_broken_by_id(conn: Connection, project: str) -> None:
    records = [rec(project, T0 + i // 3) for i in range(10)]  # groups of three share a time
    write_records(conn, records)
    ids = walk(conn, project, LogFilter(), limit=4)
    expected = sorted(records, key=lambda r: (r.requested_at, r.id), reverse=True)
    assert ids == [r.id for r in expected]


def test_list_calls_filters_combine(conn: Connection, project: str) -> None:
    write_records(
        conn,
        [
            rec(project, T0, model="a", status_code=200, metadata={"env": "prod"}),
            rec(project, T0 + 1, model="a", status_code=429, metadata={"env": "prod"}),
            rec(project, T0 + 2, model="b", status_code=200, metadata={"env": "prod"}),
            rec(project, T0 + 3, model="a", status_code=200, metadata={"env": "dev"}),
            rec(
                project, T0 + 4, model="a", status_code=200, completion_id="cmpl-1", metadata={"env": "prod"}
            ),
        ],
    )

    def times(f: LogFilter) -> list[int]:
        return [c.requested_at - T0 for c in list_calls(conn, project, f)[0]]

    assert times(LogFilter(model="a", metadata={"env": "prod"})) == [4, 1, 0]
    assert times(LogFilter(model="a", status_code=200, metadata={"env": "prod"})) == [4, 0]
    assert times(LogFilter(only_success=True)) == [4, 3, 2, 0]
    assert times(LogFilter(since_ms=T0 + 1, until_ms=T0 + 3)) == [2, 1]  # until is exclusive
    assert times(LogFilter(completion_id="cmpl-1")) == [4]
    assert times(LogFilter(metadata={"env": "staging"})) == []


def test_list_calls_contains_searches_bodies_across_pages(conn: Connection, project: str) -> None:
    # 30 non-matching calls between the matches force several over-fetched pages.
    records = [rec(project, T0 + i, text="NEEDLE here" if i % 10 == 0 else "hay") for i in range(40)]
    write_records(conn, records)
    f = LogFilter(contains="needle")
    page, cursor = list_calls(conn, project, f, limit=2)
    assert [c.requested_at - T0 for c in page] == [30, 20]
    assert all(c.request is None for c in page)  # bodies were read for the search only
    assert cursor is not None
    rest, _ = list_calls(conn, project, f, after=decode_cursor(cursor), limit=2)
    assert [c.requested_at - T0 for c in rest] == [10, 0]
    assert walk(conn, project, f, limit=3) == [r.id for r in reversed(records) if "NEEDLE" in str(r.request)]


def test_list_calls_contains_matches_response_text(conn: Connection, project: str) -> None:
    hit = rec(project, T0, response={"choices": [{"message": {"content": "Zebra Crossing"}}]})
    write_records(conn, [hit, rec(project, T0 + 1)])
    page, _ = list_calls(conn, project, LogFilter(contains="zebra crossing"), with_bodies=True)
    assert [c.id for c in page] == [hit.id]
    assert page[0].response["choices"][0]["message"]["content"] == "Zebra Crossing"


def test_list_calls_is_scoped_to_project(conn: Connection, project: str, other_project: str) -> None:
    mine, theirs = rec(project, T0), rec(other_project, T0 + 1)
    write_records(conn, [mine, theirs])
    assert [c.id for c in list_calls(conn, project, LogFilter())[0]] == [mine.id]
    assert get_call(conn, project, theirs.id) is None
    assert get_call(conn, other_project, theirs.id) is not None
    latest = latest_call(conn, project)
    assert latest is not None and latest.id == mine.id


def test_decode_cursor_rejects_foreign_cursor() -> None:
    for bad in ["not base64!!", base64.urlsafe_b64encode(b"abc:def").decode(), "%%%"]:
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_iter_calls_yields_every_match_with_bodies(engine: Engine) -> None:
    db = Database(engine)
    project = db.run_sync(create_project, "pages").id
    records = [rec(project, T0 + i) for i in range(12)]
    db.run_sync(write_records, records)
    calls = list(LogService(db, LogWriter(engine)).iter_calls(project, LogFilter(), page_size=5))
    assert [c.id for c in calls] == [r.id for r in reversed(records)]
    assert all(c.request is not None for c in calls)


def test_update_metadata_sets_and_deletes_on_matching_calls(conn: Connection, project: str) -> None:
    a = rec(project, T0, model="m1", metadata={"prompt_id": "v1", "keep": "k"})
    b = rec(project, T0 + 1, model="m1", metadata={"prompt_id": "v2"})
    c = rec(project, T0 + 2, model="m2", metadata={"prompt_id": "v1"})
    write_records(conn, [a, b, c])
    matched = update_metadata(
        conn, project, LogFilter(model="m1", metadata={"prompt_id": "v1"}), {"prompt_id": "v9", "new": "x"}
    )
    assert matched == 1
    assert get_call(conn, project, a.id).metadata == {"prompt_id": "v9", "keep": "k", "new": "x"}  # type: ignore[union-attr]
    assert get_call(conn, project, c.id).metadata == {"prompt_id": "v1"}  # type: ignore[union-attr]
    matched = update_metadata(conn, project, LogFilter(model="m1"), {"keep": None, "prompt_id": None})
    assert matched == 2
    assert get_call(conn, project, a.id).metadata == {"new": "x"}  # type: ignore[union-attr]
    assert get_call(conn, project, b.id).metadata == {}  # type: ignore[union-attr]


def test_update_metadata_handles_more_calls_than_one_chunk(conn: Connection, project: str) -> None:
    write_records(conn, [rec(project, T0 + i, model="bulk") for i in range(23)])
    assert update_metadata(conn, project, LogFilter(model="bulk"), {"batch": "b1"}, chunk=5) == 23
    page, _ = list_calls(conn, project, LogFilter(metadata={"batch": "b1"}), limit=100)
    assert len(page) == 23


def test_update_metadata_never_touches_another_project(
    conn: Connection, project: str, other_project: str
) -> None:
    theirs = rec(other_project, T0, model="shared", metadata={"k": "orig"})
    write_records(conn, [theirs, rec(project, T0, model="shared")])
    assert update_metadata(conn, project, LogFilter(model="shared"), {"k": "changed"}) == 1
    assert get_call(conn, other_project, theirs.id).metadata == {"k": "orig"}  # type: ignore[union-attr]
