"""The migrations build exactly the schema the code declares (on SQLite and Postgres), and the
move to one job system carries the old dataset jobs and training progress over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from conftest import migrated_engine
from tunepipe.db.engine import make_engine
from tunepipe.db.migrate import upgrade
from tunepipe.db.schema import metadata


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path)


def test_migrations_match_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def put(conn: Connection, table: str, **values: object) -> None:
    """A row written the way the old code wrote it (the old tables are not in the schema now)."""
    columns = ", ".join(values)
    conn.execute(
        text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + k for k in values)})"), values
    )


def test_upgrade_to_one_job_system_keeps_dataset_jobs_and_progress(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0006")
    with engine.begin() as conn:
        put(conn, "projects", id="p", name="p", created_at=1)
        put(conn, "datasets", id="d", project_id="p", name="d", train_ratio=0.9, created_at=1, updated_at=1)
        for job_id, status in (("j-done", "DONE"), ("j-running", "RUNNING")):
            put(
                conn,
                "dataset_jobs",
                id=job_id,
                project_id="p",
                dataset_id="d",
                kind="import_logs",
                status=status,
                done=5,
                total=5,
                created=4,
                skipped=1,
                error_message=None,
                params='{"dedupe": true}',
                created_at=10,
                updated_at=20,
            )
        put(
            conn,
            "fine_tunes",
            id="f",
            project_id="p",
            slug="f",
            dataset_id="d",
            provider="openpipe",
            base_model="b",
            root_model="b",
            status="TRAINING",
            training_config="{}",
            hyperparameters="{}",
            pruning_rule_ids="[]",
            progress='{"stage": "sft", "step": 7}',
            train_rows=1,
            test_rows=1,
            created_at=1,
            updated_at=1,
            training_started_at=1,
        )
        put(
            conn,
            "jobs",
            id="t",
            kind="train",
            project_id="p",
            subject_id="f",
            status="RUNNING",
            attempts=1,
            max_attempts=2,
            worker_id="w",
            heartbeat_at=1,
            cancel_requested=False,
            created_at=1,
            updated_at=1,
            started_at=1,
        )
    upgrade(engine)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(text("SELECT * FROM jobs"))}
        assert "dataset_jobs" not in [t for (t,) in conn.execute(text("SELECT name FROM sqlite_master"))]
        fine_tune_columns = [c[1] for c in conn.execute(text("PRAGMA table_info(fine_tunes)"))]
    done, running, train = rows["j-done"], rows["j-running"], rows["t"]
    assert (done.kind, done.subject_id, done.status, done.error_message) == ("import_logs", "d", "DONE", None)
    assert orjson.loads(done.result) == {"done": 5, "total": 5, "created": 4, "skipped": 1}
    assert orjson.loads(done.params) == {"dedupe": True}
    assert running.status == "ERROR" and "upgrade" in running.error_message  # its process is gone
    assert orjson.loads(train.progress) == {"stage": "sft", "step": 7}  # the fine-tune's, moved over
    assert "progress" not in fine_tune_columns
    engine.dispose()
