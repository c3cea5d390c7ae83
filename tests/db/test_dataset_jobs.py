"""The dataset-jobs repository: unfinished jobs are marked ERROR at start-up; reads are scoped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tunepipe.db import dataset_jobs as repo
from tunepipe.db.datasets import create_dataset
from tunepipe.db.engine import make_engine
from tunepipe.db.migrate import upgrade
from tunepipe.db.projects import create_project


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def test_interrupt_unfinished_marks_only_queued_and_running_jobs(engine: Engine) -> None:
    project = create_project(engine, "alpha").id
    ds = create_dataset(engine, project, "d", 0.9).id
    queued, running, done = (repo.create_job(engine, project, ds, "relabel", {}) for _ in range(3))
    repo.update_job(engine, running.id, status="RUNNING")
    repo.update_job(engine, done.id, status="DONE", created=2)
    assert repo.interrupt_unfinished(engine, "interrupted by a restart") == 2
    for job, status in ((queued, "ERROR"), (running, "ERROR"), (done, "DONE")):
        got = repo.get_job(engine, project, ds, job.id)
        assert got is not None and got.status == status
    got = repo.get_job(engine, project, ds, running.id)
    assert got is not None and got.error_message == "interrupted by a restart"
    other = create_project(engine, "beta").id
    assert repo.get_job(engine, other, ds, queued.id) is None
    assert repo.list_jobs(engine, other, ds) == []
