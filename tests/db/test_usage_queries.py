"""The usage aggregates the web UI's Usage page reads, on SQLite and Postgres: requests, tokens,
cost, cache hits and errors by time bucket and model, errors by status, inside one project and
window, judges' calls left out, with revoking a project's key beside them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from conftest import migrated_engine
from tunepipe.db.log_queries import StatusCount, UsageRow, usage
from tunepipe.db.log_rows import write_records
from tunepipe.db.projects import create_api_key, create_project, delete_api_key, list_api_keys
from tunepipe.domain.logs import LogRecord
from tunepipe.errors import NotFound

T0 = 1_700_000_000_000
HOUR = 3_600_000


@pytest.fixture(params=["sqlite", "postgres"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connection]:
    for engine in migrated_engine(request.param, tmp_path):
        with engine.begin() as connection:
            yield connection


def rec(project_id: str, at: int, model: str | None = "a", **kw: Any) -> LogRecord:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": project_id,
        "requested_at": at,
        "received_at": at + 10,
        "model": model,
        "status_code": 200,
        "source": "proxy",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": 0.25,
    }
    values.update(kw)
    return LogRecord(**values)


def test_usage_groups_by_hour_and_model_inside_the_window(conn: Connection) -> None:
    project = create_project(conn, "usage").id
    other = create_project(conn, "usage-other").id
    write_records(
        conn,
        [
            rec(project, T0 - 1),  # before the window
            rec(project, T0),
            rec(project, T0 + HOUR - 1, cache_hit=True, cost=0.0),
            rec(
                project,
                T0 + HOUR - 1,
                model="b",
                status_code=500,
                input_tokens=None,
                output_tokens=None,
                cost=None,
            ),
            rec(project, T0 + HOUR, model="b", input_tokens=7, output_tokens=3, cost=1.5),
            rec(project, T0 + 2 * HOUR, model="b", status_code=None),
            rec(project, T0 + 2 * HOUR, model="b", source="judge"),  # a judge's call: left out
            rec(project, T0 + 3 * HOUR),  # at the window's end: left out
            rec(other, T0 + HOUR),  # another project's
        ],
    )

    rows, statuses = usage(conn, project, T0, T0 + 3 * HOUR, HOUR)

    assert rows == [
        UsageRow(0, "a", requests=2, input_tokens=20, output_tokens=10, cost=0.25, cache_hits=1, errors=0),
        UsageRow(0, "b", requests=1, input_tokens=0, output_tokens=0, cost=0.0, cache_hits=0, errors=1),
        UsageRow(1, "b", requests=1, input_tokens=7, output_tokens=3, cost=1.5, cache_hits=0, errors=0),
        UsageRow(2, "b", requests=1, input_tokens=10, output_tokens=5, cost=0.25, cache_hits=0, errors=1),
    ]
    assert statuses == [StatusCount(500, 1), StatusCount(None, 1)]  # no answer at all comes last


def test_usage_of_an_empty_window_is_empty(conn: Connection) -> None:
    project = create_project(conn, "usage-empty").id
    write_records(conn, [rec(project, T0)])
    assert usage(conn, project, T0 + HOUR, T0 + 25 * HOUR, HOUR) == ([], [])


def test_delete_api_key_revokes_only_the_projects_own_key(conn: Connection) -> None:
    project = create_project(conn, "keys-a").id
    other = create_project(conn, "keys-b").id
    mine, _ = create_api_key(conn, project, name="temp")
    theirs, _ = create_api_key(conn, other, name="theirs")

    with pytest.raises(NotFound):
        delete_api_key(conn, project, theirs.id)
    assert delete_api_key(conn, project, mine.id).id == mine.id
    assert [k.id for k in list_api_keys(conn, project)] == []
    assert [k.id for k in list_api_keys(conn, other)] == [theirs.id]
