"""The request-log spool: records survive their process and an unreachable database.

Appends come back in order across segments, marks delete what is committed, a torn last record
is skipped, a dead process's spool is replayed once (by whoever locks it first), in order, and
without storing a record twice; while the database is down the spool is the writer's buffer."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from conftest import migrated_engine
from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.log_queries import get_call
from tunepipe.db.log_rows import prepare, write_records
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.migrate import upgrade
from tunepipe.db.projects import create_project
from tunepipe.db.spool import Position, Spool, claim_orphans, read_spool
from tunepipe.domain.criteria import CriterionResult
from tunepipe.domain.logs import LogRecord


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'logs.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def project_id(engine: Engine) -> str:
    return Database(engine).run_sync(create_project, f"spool-{uuid.uuid4().hex[:8]}").id


def record(project_id: str, n: int, **overrides: Any) -> LogRecord:
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
        "metadata": {"n": str(n)},
        "request_id": f"req-{n}",
    }
    values.update(overrides)
    return LogRecord(**values)


def stored_ids(engine: Engine) -> list[str]:
    """Logged call ids in the order they were inserted (a fresh table, rows never updated)."""
    order = "rowid" if engine.dialect.name == "sqlite" else "ctid"
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text(f"SELECT id FROM logged_calls ORDER BY {order}"))]


def dead_spool(
    directory: Path, records: list[LogRecord], *, marked: int = 0, segment_bytes: int = 2_000
) -> Spool:
    """A spool as a killed process leaves it: ``records`` appended, the first ``marked`` of
    them marked committed, the lock released with the files in place."""
    spool = Spool.create(directory, segment_bytes=segment_bytes)
    positions = [spool.append(prepare(r)) for r in records]
    if marked:
        spool.mark(positions[marked - 1])
    spool.close(remove=False)
    return spool


def test_spool_appends_read_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, segment_bytes=1_000)
    judged = [(0, CriterionResult(name="polite", version=2, status="success", score=0.9, details={"a": 1}))]
    records = [
        record("p", n, metadata={"n": str(n), "none": None}, criteria=judged if n == 3 else [])
        for n in range(40)
    ]
    records[5].response = None
    for r in records:
        spool.append(prepare(r))
    assert spool.end.segment > 2  # rotated
    read, end = read_spool(tmp_path, spool.owner, Position(0, 0), spool.end, limit=1_000)
    assert end == spool.end
    assert [item.record.id for item, _ in read] == [r.id for r in records]
    back = read[3][0]
    assert back.record.criteria == judged
    assert back.record.metadata == {"n": "3", "none": None}
    assert orjson.loads(back.request) == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi 3"}],
    }
    assert back.response == b'{"id": "chatcmpl-x", "choices": []}'  # the bytes as received
    assert read[5][0].response is None
    assert read[7][0].record.request_id == "req-7"
    # A limit reads a batch and says where the next one starts.
    first, after = read_spool(tmp_path, spool.owner, Position(0, 0), spool.end, limit=7)
    rest, _ = read_spool(tmp_path, spool.owner, after, spool.end, limit=1_000)
    assert [i.record.id for i, _ in first + rest] == [r.id for r in records]
    spool.close(remove=True)
    assert list(tmp_path.iterdir()) == []


def test_spool_mark_deletes_committed_segments_and_orphan_resumes_at_cursor(tmp_path: Path) -> None:
    records = [record("p", n) for n in range(30)]
    dead = dead_spool(tmp_path, records, marked=20)
    segments = sorted(tmp_path.glob(f"{dead.owner}.*.seg"))
    assert segments and int(segments[0].name.split(".")[1]) > 0  # the first segments are gone
    (orphan,) = claim_orphans(tmp_path)
    read, _ = orphan.read(orphan.start(), 1_000)
    assert [i.record.id for i, _ in read] == [r.id for r in records[20:]]
    orphan.release(remove=True)
    assert list(tmp_path.iterdir()) == []


def test_spool_torn_last_record_is_skipped(tmp_path: Path) -> None:
    records = [record("p", n) for n in range(5)]
    dead = dead_spool(tmp_path, records, segment_bytes=1_000_000)
    (segment,) = tmp_path.glob(f"{dead.owner}.*.seg")
    size = segment.stat().st_size
    os.truncate(segment, size - 7)  # the process died inside the last write
    (orphan,) = claim_orphans(tmp_path)
    read, _ = orphan.read(orphan.start(), 1_000)
    assert [i.record.id for i, _ in read] == [r.id for r in records[:4]]
    orphan.release(remove=False)
    # A damaged record (bad checksum) also ends the segment.
    data = bytearray(segment.read_bytes())
    data[read[2][1].offset + 20] ^= 0xFF  # inside the fourth record
    segment.write_bytes(bytes(data))
    (orphan,) = claim_orphans(tmp_path)
    read, _ = orphan.read(orphan.start(), 1_000)
    assert [i.record.id for i, _ in read] == [r.id for r in records[:3]]
    orphan.release(remove=True)


def test_spool_of_a_live_process_is_never_claimed(tmp_path: Path) -> None:
    live = Spool.create(tmp_path)
    live.append(prepare(record("p", 0)))
    dead_spool(tmp_path, [record("p", 1)])
    claimed = claim_orphans(tmp_path, exclude=None)
    assert [o.owner for o in claimed] != [live.owner]
    assert len(claimed) == 1
    assert claim_orphans(tmp_path) == []  # the first claimer holds it: nobody replays it twice
    claimed[0].release(remove=True)
    live.close(remove=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_spool_replayed_at_start_in_order_without_duplicates(backend: str, tmp_path: Path) -> None:
    for engine in migrated_engine(backend, tmp_path):
        await replay_in_order(engine, Database(engine).run_sync(create_project, "replay").id, tmp_path)


async def replay_in_order(engine: Engine, project_id: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    older = [record(project_id, n) for n in range(25)]
    newer = [record(project_id, 100 + n) for n in range(10)]
    dead_spool(spool_dir, older, marked=5)
    dead_spool(spool_dir, newer)
    # The first 5 are committed and marked; the next 5 were committed but the mark was lost
    # when the process died: replay must skip them, not fail or store them twice.
    Database(engine).run_sync(write_records, older[:10])
    writer = LogWriter(engine, spool_dir=spool_dir)
    writer.start()
    live = record(project_id, 999)
    assert await writer.submit(live)
    await writer.flush()
    assert stored_ids(engine) == [r.id for r in older] + [r.id for r in newer] + [live.id]
    assert writer.stats.replayed == 20 + 10
    assert writer.stats.dropped == 0
    call = Database(engine).run_sync(get_call, project_id, older[12].id)
    assert call is not None and call.request == older[12].request and call.request_id == "req-12"
    await writer.close()
    assert list(spool_dir.iterdir()) == []  # everything committed: nothing left behind


class Outage:
    """Every INSERT fails as if the database were unreachable, while ``down``."""

    def __init__(self, engine: Engine) -> None:
        self.down = False
        self.attempts = 0
        event.listen(engine, "before_cursor_execute", self._check)

    def _check(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.down and statement.lstrip().upper().startswith("INSERT"):
            self.attempts += 1
            raise OperationalError(statement, {}, ConnectionRefusedError("connection refused"))


async def test_spool_buffers_an_outage_with_bounded_memory_then_writes_in_order(
    engine: Engine, project_id: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outage = Outage(engine)
    outage.down = True
    writer = LogWriter(
        engine, spool_dir=tmp_path / "spool", queue_size=4, batch_size=3, backoff_s=0.01, backoff_max_s=0.05
    )
    writer.start()
    records = [record(project_id, n) for n in range(60)]
    for r in records:
        assert await asyncio.wait_for(writer.submit(r), 0.5)  # never waits for queue space
        assert writer.queue_depth <= 4
    await asyncio.sleep(0.5)
    assert outage.attempts > 3  # still trying, with back-off
    assert writer.stats.spooled > 0 and writer.stats.dropped == 0
    outage.down = False
    await writer.flush()
    assert stored_ids(engine) == [r.id for r in records]
    assert writer.stats.written == 60
    errors = [r for r in caplog.records if "not written" in r.getMessage()]
    assert len(errors) == 1  # once per interval, not once per attempt
    assert any("succeed again" in r.getMessage() for r in caplog.records)
    await writer.close()


async def test_spool_keeps_what_an_unreachable_database_did_not_take_at_shutdown(
    engine: Engine, project_id: str, tmp_path: Path
) -> None:
    outage = Outage(engine)
    outage.down = True
    spool_dir = tmp_path / "spool"
    writer = LogWriter(engine, spool_dir=spool_dir, backoff_s=0.01, backoff_max_s=0.05, close_timeout_s=0.3)
    writer.start()
    records = [record(project_id, n) for n in range(8)]
    for r in records:
        assert await writer.submit(r)
    await writer.close()
    assert writer.stats.written == 0 and writer.stats.dropped == 0
    assert list(spool_dir.glob("*.seg"))
    outage.down = False
    again = LogWriter(engine, spool_dir=spool_dir)
    again.start()
    await again.flush()
    assert stored_ids(engine) == [r.id for r in records]
    await again.close()
    assert list(spool_dir.iterdir()) == []
