"""The request-log writer against real databases: batching, flush, drain on close,
back-pressure, and failures that are retried and counted, never silent."""

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text

from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.log_queries import get_call, list_calls
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.migrate import upgrade
from tunepipe.db.projects import create_project
from tunepipe.db.schema import logged_calls
from tunepipe.domain.logs import LogFilter, LogRecord


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'logs.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def project_id(engine: Engine) -> str:
    return Database(engine).run_sync(create_project, f"writer-{uuid.uuid4().hex[:8]}").id


def record(project_id: str, n: int = 0, **overrides: Any) -> LogRecord:
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": project_id,
        "requested_at": 1_700_000_000_000 + n,
        "received_at": 1_700_000_000_250 + n,
        "model": "gpt-4o",
        "status_code": 200,
        "source": "proxy",
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"hi {n}"}]},
        "response": b'{"id": "chatcmpl-x", "choices": []}',
        "input_tokens": 3,
        "output_tokens": 4,
        "cost": 4.75e-05,
        "metadata": {"n": str(n)},
    }
    values.update(overrides)
    return LogRecord(**values)


def count_rows(engine: Engine, project_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(logged_calls).where(logged_calls.c.project_id == project_id)
            ).scalar_one()
        )


def count_commits(engine: Engine) -> list[int]:
    commits = [0]

    def on_commit(_conn: Any) -> None:
        commits[0] += 1

    event.listen(engine, "commit", on_commit)
    return commits


def slow_inserts(engine: Engine, seconds: float) -> threading.Event:
    """Make every batch insert take ``seconds``; the event is set once one has started."""
    started = threading.Event()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO logged_calls "):
            started.set()
            time.sleep(seconds)

    event.listen(engine, "before_cursor_execute", before)
    return started


async def test_log_writer_writes_queued_records_in_few_batches(engine: Engine, project_id: str) -> None:
    writer = LogWriter(engine, batch_size=100)
    commits = count_commits(engine)
    writer.start()
    for n in range(250):
        assert await writer.submit(record(project_id, n))
    await writer.flush()
    assert writer.stats.enqueued == writer.stats.written == 250
    assert commits[0] == 3  # 100 + 100 + 50, one transaction each
    assert count_rows(engine, project_id) == 250
    await writer.close()


async def test_log_writer_stores_every_field(engine: Engine, project_id: str) -> None:
    writer = LogWriter(engine)
    writer.start()
    rec = record(
        project_id,
        7,
        finish_reason="stop",
        completion_id="chatcmpl-abc",
        error_message="partial",
        streamed=True,
        cache_hit=True,
        metadata={"prompt_id": "p1", "gone": None},
    )
    await writer.submit(rec)
    await writer.close()
    call = Database(engine).run_sync(get_call, project_id, rec.id)
    assert call is not None
    assert (call.requested_at, call.received_at, call.duration_ms) == (
        1_700_000_000_007,
        1_700_000_000_257,
        250,
    )
    assert (call.model, call.status_code, call.source) == ("gpt-4o", 200, "proxy")
    assert (call.input_tokens, call.output_tokens, call.cost) == (3, 4, pytest.approx(4.75e-05))
    assert (call.finish_reason, call.completion_id, call.error_message) == ("stop", "chatcmpl-abc", "partial")
    assert call.streamed and call.cache_hit
    assert call.metadata == {"prompt_id": "p1", "gone": None}
    assert call.request == rec.request
    assert call.response == {"id": "chatcmpl-x", "choices": []}  # raw bytes are stored as JSON


async def test_log_writer_fits_oversized_values_to_their_columns(engine: Engine, project_id: str) -> None:
    writer = LogWriter(engine)
    writer.start()
    rec = record(
        project_id,
        model="m" * 301,
        finish_reason="f" * 33,
        completion_id="c" * 201,
        input_tokens=2**31,
        output_tokens=-(2**31) - 1,
        received_at=1_700_000_000_000 + 2**31,  # a duration past 32 bits
        metadata={"k" * 201: "key", "multibyte": "a" + "€" * 600, "ascii": "x" * 1501},
    )
    await writer.submit(rec)
    await writer.close()
    call = Database(engine).run_sync(get_call, project_id, rec.id)
    assert call is not None
    assert (call.model, call.finish_reason, call.completion_id) == ("m" * 300, "f" * 32, "c" * 200)
    assert (call.input_tokens, call.output_tokens, call.duration_ms) == (None, None, None)
    # Values are cut at 1,500 UTF-8 bytes, never inside a character.
    assert call.metadata == {"k" * 200: "key", "multibyte": "a" + "€" * 499, "ascii": "x" * 1500}


async def test_log_writer_without_received_at_has_no_duration(engine: Engine, project_id: str) -> None:
    writer = LogWriter(engine)
    writer.start()
    rec = record(project_id, received_at=None, request=None, response=None)
    await writer.submit(rec)
    await writer.close()
    call = Database(engine).run_sync(get_call, project_id, rec.id)
    assert call is not None
    assert call.duration_ms is None and call.received_at is None
    assert call.request is None and call.response is None


async def test_log_writer_flush_waits_for_records_queued_before_it(engine: Engine, project_id: str) -> None:
    slow_inserts(engine, 0.05)
    writer = LogWriter(engine, batch_size=2)
    writer.start()
    for n in range(6):
        await writer.submit(record(project_id, n))
    assert count_rows(engine, project_id) == 0  # nothing has run yet: submit never waits on the DB
    await writer.flush()
    assert count_rows(engine, project_id) == 6
    assert writer.stats.written == 6
    await writer.close()


async def test_log_writer_flush_with_nothing_queued_returns_at_once(engine: Engine) -> None:
    writer = LogWriter(engine)
    writer.start()
    started = time.monotonic()
    await writer.flush(timeout_s=5)
    assert time.monotonic() - started < 1
    await writer.close()


async def test_log_writer_close_drains_everything(engine: Engine, project_id: str) -> None:
    slow_inserts(engine, 0.02)
    writer = LogWriter(engine, batch_size=10)
    writer.start()
    for n in range(95):
        await writer.submit(record(project_id, n))
    await writer.close()
    assert writer.stats.written == 95
    assert writer.queue_depth == 0
    assert count_rows(engine, project_id) == 95


async def test_log_writer_submit_waits_when_queue_is_full(engine: Engine, project_id: str) -> None:
    slow_inserts(engine, 0.1)
    writer = LogWriter(engine, queue_size=2, batch_size=1, enqueue_timeout_s=10)
    writer.start()
    started = time.monotonic()
    results = [await writer.submit(record(project_id, n)) for n in range(6)]
    waited = time.monotonic() - started
    assert all(results)
    assert writer.stats.waited_for_space >= 3
    assert writer.queue_depth <= 2
    assert waited >= 0.2  # submit was held back by the slow writes
    await writer.close()
    assert writer.stats.dropped == 0
    assert count_rows(engine, project_id) == 6


async def test_log_writer_drops_and_counts_record_when_queue_stays_full(
    engine: Engine, project_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    inserting = slow_inserts(engine, 0.5)
    writer = LogWriter(engine, queue_size=1, batch_size=1, enqueue_timeout_s=0.01)
    writer.start()
    assert await writer.submit(record(project_id, 0))
    while not inserting.is_set():  # the writer takes it and is now stuck in a slow insert
        await asyncio.sleep(0.005)
    assert await writer.submit(record(project_id, 1))  # fills the one slot
    with caplog.at_level(logging.ERROR, logger="tunepipe.db.log_writer"):
        assert not await writer.submit(record(project_id, 2))
    assert writer.stats.dropped == 1
    assert writer.stats.enqueued == 2
    assert any("request log dropped" in r.getMessage() for r in caplog.records)
    await writer.close()
    assert writer.stats.written == 2
    assert count_rows(engine, project_id) == 2


async def test_log_writer_failing_batch_is_retried_then_counted_as_dropped(
    engine: Engine, project_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    with engine.begin() as conn:  # a broken database: every insert fails
        conn.execute(text("DROP TABLE logged_call_metadata"))
    writer = LogWriter(engine, retries=3)
    writer.start()
    with caplog.at_level(logging.ERROR, logger="tunepipe.db.log_writer"):
        assert await writer.submit(record(project_id, 0))
        assert await writer.submit(record(project_id, 1))
        await writer.flush()
    assert writer.stats.failed_batches == 3
    assert writer.stats.dropped == 2
    assert writer.stats.written == 0
    # One line per interval while it keeps failing (not one per attempt, and no traceback flood).
    failures = [r for r in caplog.records if "not written" in r.getMessage()]
    assert len(failures) == 1
    assert "no such table" in failures[0].getMessage()
    assert any("batch of 2 dropped after 3 attempts" in r.getMessage() for r in caplog.records)
    assert count_rows(engine, project_id) == 0  # the transaction was rolled back each time
    await writer.close()


async def test_log_writer_record_rejected_for_its_data_is_dropped_and_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    writer = LogWriter(engine)
    writer.start()
    bad = record(str(uuid.uuid4()))  # no such project: the foreign key rejects it
    with caplog.at_level(logging.ERROR, logger="tunepipe.db.log_writer"):
        assert await writer.submit(bad)
        await writer.flush()
    assert writer.stats.dropped == 1
    assert writer.stats.written == 0
    assert any(bad.id in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
    await writer.close()


async def test_log_writer_bad_record_does_not_drop_the_rest_of_its_batch(
    engine: Engine, project_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = LogWriter(engine)
    writer.start()
    good = [record(project_id, n) for n in range(4)]
    for r in good[:2]:
        await writer.submit(r)
    await writer.submit(record(str(uuid.uuid4()), 99))
    for r in good[2:]:
        await writer.submit(r)
    with caplog.at_level(logging.ERROR, logger="tunepipe.db.log_writer"):
        await writer.flush()
    assert writer.stats.dropped == 1
    assert writer.stats.written == 4
    assert {c.id for c in Database(engine).run_sync(list_calls, project_id, LogFilter())[0]} == {
        r.id for r in good
    }
    await writer.close()


async def test_log_writer_on_postgres_batches_and_isolates_bad_records(pg_schema: str) -> None:
    engine = make_engine(pg_schema)
    upgrade(engine)
    project_id = Database(engine).run_sync(create_project, f"writer-pg-{uuid.uuid4().hex[:8]}").id
    commits = count_commits(engine)
    writer = LogWriter(engine, batch_size=50)
    writer.start()
    for n in range(120):
        await writer.submit(record(project_id, n))
    await writer.flush()
    assert commits[0] == 3  # 50 + 50 + 20
    assert writer.stats.written == 120
    survivor = record(project_id, 500)
    await writer.submit(record(str(uuid.uuid4())))  # rejected by the foreign key
    await writer.submit(survivor)
    await writer.close()
    assert writer.stats.written == 121
    assert writer.stats.dropped == 1
    assert count_rows(engine, project_id) == 121
    page, _ = Database(engine).run_sync(
        list_calls, project_id, LogFilter(metadata={"n": "119"}), with_bodies=True
    )
    assert [c.request["messages"][0]["content"] for c in page] == ["hi 119"]
    assert Database(engine).run_sync(get_call, project_id, survivor.id) is not None
    engine.dispose()
