"""One job system, through the API and the CLI: every background job is a row any worker can
claim, listed and cancelled through ``/jobs`` and ``tunepipe jobs``, scoped by project; a dataset
job queued by a server without a worker is run by a ``tunepipe worker`` started later, and an
import whose worker died half-way is redone by the next attempt without counting anything twice.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, update

from conftest import KEY_RE, FakeProvider, Gateway, _start, base_env, free_port
from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.schema import dataset_entries, jobs
from tunepipe.domain.clock import now_ms
from tunepipe.domain.ids import uuid7


def tag() -> str:
    return uuid.uuid4().hex[:10]


def chat(h: httpx.Client, text: str, run: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "metadata": {"run": run}}
    assert h.post("/chat/completions", json=body).status_code == 200


def wait_status(h: httpx.Client, path: str, done: tuple[str, ...] = ("DONE", "ERROR", "CANCELLED")) -> Any:
    deadline = time.monotonic() + 30
    while True:
        job = h.get(path).json()
        if job["status"] in done:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


@pytest.fixture(scope="module")
def other_key(gateway: Gateway) -> str:
    keys = KEY_RE.findall(gateway.cli("projects", "create", f"jobs-{tag()}").stdout)
    assert len(keys) == 2
    return keys[0]


def test_jobs_lists_every_background_job_of_the_project(gateway: Gateway, other_key: str) -> None:
    run = tag()
    with gateway.http() as h:
        chat(h, f"hello {run}", run)
        ds = h.post("/datasets", json={"name": f"j-{run}"}).json()["id"]
        started = h.post(f"/datasets/{ds}/import-logs", json={"filters": {"metadata": {"run": run}}}).json()
        done = wait_status(h, f"/jobs/{started['id']}")
        assert done["object"] == "job" and done["kind"] == "import_logs" and done["subject_id"] == ds
        assert done["status"] == "DONE" and done["result"]["created"] == 1 and done["attempts"] == 1
        assert done["progress"]["stage"] == "done" and done["finished_at"] is not None
        assert "worker_id" not in done  # a host name is the operator's business
        listed = h.get("/jobs", params={"kind": "import_logs"}).json()["data"]
        assert started["id"] in [j["id"] for j in listed]
        assert h.get("/jobs", params={"subject_id": ds}).json()["data"][0]["id"] == started["id"]
        assert h.get("/jobs", params={"status": "NOPE"}).status_code == 400
        assert h.get("/jobs", params={"kind": "nope"}).status_code == 400
        assert h.get("/jobs/a%00b").status_code == 404
    with gateway.http(other_key) as h:  # another project sees none of it
        assert h.get(f"/jobs/{started['id']}").status_code == 404
        assert h.post(f"/jobs/{started['id']}/cancel").status_code == 404
        assert h.delete(f"/jobs/{started['id']}").status_code == 404
        assert started["id"] not in [j["id"] for j in h.get("/jobs").json()["data"]]
    with gateway.http(gateway.read_only_key) as h:  # reading yes, cancelling no
        assert h.get(f"/jobs/{started['id']}").status_code == 200
        assert h.post(f"/jobs/{started['id']}/cancel").status_code == 403
        assert h.delete(f"/datasets/{ds}/jobs/{started['id']}").status_code == 403
    with gateway.http() as h:  # a finished job stays as it is
        again = h.post(f"/jobs/{started['id']}/cancel").json()
        assert again["status"] == "DONE" and not again["cancel_requested"]


@dataclass
class Idle:
    """A server that queues jobs but runs none (``TUNEPIPE_WORKER=false``)."""

    env: dict[str, str]
    base_url: str
    key: str

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "tunepipe", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done


@pytest.fixture
def idle(fake_provider: FakeProvider, tmp_path: Path) -> Iterator[Idle]:
    env = base_env(tmp_path, fake_provider, None)
    env["TUNEPIPE_API_KEY"] = key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env["TUNEPIPE_WORKER"] = "false"
    port = free_port()
    proc = _start(env, port)
    try:
        yield Idle({**env, "TUNEPIPE_WORKER": "true"}, f"http://127.0.0.1:{port}/api/v1", key)
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_queued_job_is_run_by_a_worker_started_later(idle: Idle) -> None:
    run = tag()
    with idle.http() as h:
        for i in range(3):
            chat(h, f"later {run} {i}", run)
        ds = h.post("/datasets", json={"name": "later"}).json()["id"]
        job = h.post(f"/datasets/{ds}/import-logs", json={"filters": {"metadata": {"run": run}}}).json()
        time.sleep(1.0)
        assert h.get(f"/datasets/{ds}/jobs/{job['id']}").json()["status"] == "QUEUED"  # nobody runs it
        out = idle.cli("worker", "--once", "--kind", "import_logs")
        assert "no queued job" not in out.stderr
        done = h.get(f"/datasets/{ds}/jobs/{job['id']}").json()
        assert (done["status"], done["created"], done["attempts"]) == ("DONE", 3, 1)
        assert len(h.get(f"/datasets/{ds}/entries").json()["data"]) == 3


def test_cancel_a_queued_job_through_the_api_and_the_cli(idle: Idle) -> None:
    with idle.http() as h:
        ds = h.post("/datasets", json={"name": "cancel"}).json()["id"]
        first = h.post(f"/datasets/{ds}/import-logs", json={}).json()
        second = h.post(f"/datasets/{ds}/relabel", json={"model": "gpt-4o"}).json()
        cancelled = h.delete(f"/datasets/{ds}/jobs/{first['id']}").json()
        assert (cancelled["status"], cancelled["error_message"]) == ("CANCELLED", "cancelled")
        listed = idle.cli("jobs", "list").stdout
        assert second["id"] in listed and "QUEUED" in listed and "CANCELLED" in listed
        idle.cli("jobs", "cancel", second["id"])
        got = h.get(f"/jobs/{second['id']}").json()
        assert got["status"] == "CANCELLED" and got["kind"] == "relabel"
        assert '"status": "CANCELLED"' in idle.cli("jobs", "get", second["id"]).stdout
        other = h.post("/datasets", json={"name": "other"}).json()["id"]
        assert h.get(f"/datasets/{other}/jobs/{first['id']}").status_code == 404  # not that dataset's
    assert "no queued job" in idle.cli("worker", "--once").stderr


def test_an_import_whose_worker_died_is_redone_without_duplicates(idle: Idle) -> None:
    run = tag()
    with idle.http() as h:
        for i in range(4):
            chat(h, f"redo {run} {i}", run)
        ds = h.post("/datasets", json={"name": "redo"}).json()["id"]
        job = h.post(f"/datasets/{ds}/import-logs", json={"filters": {"metadata": {"run": run}}}).json()
        assert h.get(f"/datasets/{ds}").json()["dataset_entry_count"] == 0
        # A worker on another host claimed it, wrote part of it, and died.
        db = Database(make_engine(f"sqlite:///{Path(idle.env['TUNEPIPE_HOME']) / 'tunepipe.db'}"))
        with db.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job["id"])
                .values(
                    status="RUNNING", worker_id="gone-host:1:x", attempts=1, heartbeat_at=now_ms() - 3_600_000
                )
            )
            partial = {
                "dataset_id": ds,
                "split": "TRAIN",
                "messages": '[{"role": "user", "content": "half-way"}]',
                "output": '{"role": "assistant", "content": "x"}',
                "provenance": "REQUEST_LOG",
                "job_id": job["id"],
                "input_hash": "0" * 64,
                "created_at": now_ms(),
                "updated_at": now_ms(),
            }
            row = conn.execute(jobs.select().where(jobs.c.id == job["id"])).first()
            assert row is not None
            conn.execute(insert(dataset_entries).values(id=uuid7(), project_id=row.project_id, **partial))
        db.dispose()
        assert h.get(f"/datasets/{ds}").json()["dataset_entry_count"] == 1
        idle.cli("worker", "--once")
        done = h.get(f"/datasets/{ds}/jobs/{job['id']}").json()
        assert (done["status"], done["attempts"], done["created"]) == ("DONE", 2, 4)
        texts = sorted(e["messages"][0]["content"] for e in h.get(f"/datasets/{ds}/entries").json()["data"])
        assert texts == [f"redo {run} {i}" for i in range(4)]  # the dead attempt's entry is gone
