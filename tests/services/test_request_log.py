"""Deriving a log record from a finished call (tokens, cost, finish reason, completion id) and
the logger's opt-out, with a real writer on a real SQLite database."""

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine

from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.log_queries import list_calls
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.migrate import upgrade
from tunepipe.db.projects import create_project
from tunepipe.domain.clock import now_ms
from tunepipe.domain.ids import uuid7
from tunepipe.domain.logs import LogFilter
from tunepipe.domain.pricing import Price
from tunepipe.errors import UpstreamRejected
from tunepipe.services.logs.recording import (
    CallLog,
    RequestLogger,
    build_record,
    completion_id_of,
    finish_reason_of,
    usage_of,
)

COMPLETION = {
    "id": "chatcmpl-42",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'rl.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def test_usage_of_reads_openai_usage() -> None:
    assert usage_of(COMPLETION) == (1200, 300)
    assert usage_of({"usage": {"prompt_tokens": "12", "completion_tokens": None}}) == (None, None)
    assert usage_of({"choices": []}) == (None, None)
    assert usage_of(None) == (None, None)
    assert usage_of(b"{}") == (None, None)


def test_finish_reason_and_completion_id_come_from_first_choice() -> None:
    assert finish_reason_of(COMPLETION) == "length"
    assert completion_id_of(COMPLETION) == "chatcmpl-42"
    assert finish_reason_of({"choices": []}) is None
    assert finish_reason_of({"error": {"message": "x"}}) is None
    assert completion_id_of({"id": 7}) is None


def test_build_record_prices_gpt4o_call() -> None:
    record = build_record(
        project_id="p",
        requested_at=1000,
        received_at=1250,
        model="gpt-4o",
        status_code=200,
        source="proxy",
        request={"model": "gpt-4o"},
        response=orjson.dumps(COMPLETION),
        parsed_response=COMPLETION,
        metadata={"k": "v"},
        price=Price(2.5, 10.0),
    )
    assert (record.input_tokens, record.output_tokens) == (1200, 300)
    # (1200 × $2.50 + 300 × $10.00) / 1M = $0.006
    assert record.cost == pytest.approx(0.006, rel=1e-12)
    assert record.finish_reason == "length"
    assert record.completion_id == "chatcmpl-42"
    assert record.response == orjson.dumps(COMPLETION)  # raw bytes are kept as sent
    assert record.metadata == {"k": "v"}


def test_build_record_cache_hit_costs_nothing_and_unknown_price_has_no_cost() -> None:
    common = {
        "project_id": "p",
        "requested_at": 1,
        "received_at": 2,
        "model": "m",
        "status_code": 200,
        "source": "proxy",
        "request": {},
        "response": COMPLETION,
    }
    hit = build_record(**common, price=Price(2.5, 10.0), cache_hit=True)
    assert (hit.cost, hit.cache_hit, hit.input_tokens) == (0.0, True, 1200)  # the stored usage, no cost
    assert build_record(**common, price=None).cost is None
    assert build_record(**common, price=Price(2.5, 10.0)).input_tokens == 1200  # parsed from dict response


def test_build_record_ids_are_unique() -> None:
    ids = {
        build_record(
            project_id="p",
            requested_at=1,
            received_at=1,
            model=None,
            status_code=None,
            source="report",
            request=None,
            response=None,
        ).id
        for _ in range(50)
    }
    assert len(ids) == 50


async def test_request_logger_writes_success_and_failure(engine: Engine) -> None:
    project = Database(engine).run_sync(create_project, "rl").id
    writer = LogWriter(engine)
    writer.start()
    logger = RequestLogger(writer)
    call = CallLog(
        project_id=project,
        requested_at=now_ms(),
        model="gpt-4o",
        request={"model": "gpt-4o", "messages": []},
        enabled=True,
        metadata={"prompt_id": "x"},
        price=Price(2.5, 10.0),
    )
    await logger.success(call, COMPLETION, raw=orjson.dumps(COMPLETION))
    error = UpstreamRejected("fake failure 429", upstream_status=429, error_type="rate_limit_error")
    await logger.failure(dataclasses.replace(call, id=uuid7()), error)  # another call, same shape
    await writer.close()
    calls = Database(engine).run_sync(list_calls, project, LogFilter(), with_bodies=True)[0]
    ok, failed = sorted(calls, key=lambda c: c.status_code or 0)  # same requested_at
    assert (ok.status_code, ok.cost, ok.source) == (200, pytest.approx(0.006), "proxy")
    assert ok.duration_ms is not None and ok.duration_ms >= 0
    assert ok.response == COMPLETION
    assert ok.metadata == {"prompt_id": "x"}
    assert (failed.status_code, failed.error_message) == (429, "fake failure 429")
    assert failed.response["error"]["type"] == "rate_limit_error"
    assert failed.cost is None


async def test_request_logger_disabled_call_is_not_written(engine: Engine) -> None:
    project = Database(engine).run_sync(create_project, "off").id
    writer = LogWriter(engine)
    writer.start()
    logger = RequestLogger(writer)
    call = CallLog(project_id=project, requested_at=1, model="gpt-4o", request={}, enabled=False)
    await logger.success(call, COMPLETION)
    await logger.failure(call, UpstreamRejected("no", upstream_status=400))
    await writer.close()
    assert writer.stats.enqueued == 0
    assert Database(engine).run_sync(list_calls, project, LogFilter())[0] == []
