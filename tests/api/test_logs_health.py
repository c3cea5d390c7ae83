"""``/health`` reports the request-log writer's counters: what was queued, written and dropped."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import Gateway
from tunepipe.api.app import create_app
from tunepipe.db.projects import ensure_default_project
from tunepipe.domain.logs import LogRecord
from tunepipe.services.container import open_database
from tunepipe.settings import Settings

KEY = "opk_" + "h" * 42


def health(gateway: Gateway) -> dict[str, Any]:
    r = httpx.get(f"{gateway.root}/health")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def test_health_counts_logged_calls(gateway: Gateway) -> None:
    before = health(gateway)["logs"]
    with gateway.client() as client:
        for _ in range(3):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": uuid.uuid4().hex}]
            )
    gateway.latest()  # reads flush the writer first
    body = health(gateway)
    after = body["logs"]
    assert body["status"] == "ok"
    # At least these 3 (a call of an earlier test may still be landing on the shared server),
    # and every one enqueued is written.
    assert after["enqueued"] - before["enqueued"] >= 3
    assert after["written"] - before["written"] == after["enqueued"] - before["enqueued"]
    assert after["dropped"] == before["dropped"]
    assert after["queueDepth"] == 0
    assert set(after) == {
        "enqueued",
        "written",
        "dropped",
        "failed_batches",
        "waited_for_space",
        "spooled",
        "replayed",
        "queueDepth",
    }


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'health.db'}", api_key=KEY)
    db = open_database(settings, migrate=True)
    db.run_sync(ensure_default_project, settings.api_key)
    db.dispose()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_health_reports_dropped_records_and_failed_batches(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://tp", headers=headers) as client:
        r = await client.post("/api/v1/report", json={"reqPayload": {"model": "gpt-4o"}, "statusCode": 200})
        assert r.status_code == 200
        # A record the database refuses (its project does not exist).
        orphan = LogRecord(
            id=str(uuid.uuid4()),
            project_id=str(uuid.uuid4()),
            requested_at=1,
            received_at=2,
            model="gpt-4o",
            status_code=200,
            source="proxy",
        )
        assert await app.state.tp.writer.submit(orphan)
        assert (await client.get("/api/v1/logs")).status_code == 200  # flushes
        logs = (await client.get("/health")).json()["logs"]
    assert logs["enqueued"] == 2
    assert logs["written"] == 1
    assert logs["dropped"] == 1
    assert logs["failed_batches"] >= 1
    assert logs["queueDepth"] == 0
