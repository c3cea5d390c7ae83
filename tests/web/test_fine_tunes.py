"""The Fine-tunes pages in Chromium.

Training for real is ``test_fine_tune_training.py``'s (marked slow); these tests reach the states
a page shows without training, each the way the system itself gets there:

- **create → errored**: the form creates a model on a base model registered without weights;
  the in-server worker claims the job and fails it at once (no model directory), and the page,
  polling, shows the error.
- **training**: a train job claimed by a stand-in worker id records progress (as
  ``JobContext.report`` does) and ``training_log.jsonl`` in its job directory (as the training
  process does); the page polls and redraws the loss curve.
- **deployed**: a model with a stored adapter whose archive keeps the training log (as
  ``TrainingRun._store_adapter`` does), TEST rows and test-set outputs.
"""

from __future__ import annotations

import json
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from conftest import Gateway
from tunepipe.db import base_models as base_repo
from tunepipe.db import fine_tunes as ft_repo
from tunepipe.db import jobs as job_repo
from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.projects import get_project
from tunepipe.domain.clock import now_ms
from tunepipe.domain.fine_tunes import FineTune
from tunepipe.domain.fine_tunes import TestOutput as Output
from tunepipe.domain.ids import uuid7
from tunepipe.domain.jobs import Job, JobEvent, JobKind
from tunepipe.services.fine_tunes import files as ft_files
from tunepipe.services.jobs import queue
from web.conftest import SCREENSHOTS, XSS_IMG, post_with_cookie, session_cookie, sign_in

pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)

STAND_IN = "ui-test-worker"


@dataclass
class Proj:
    name: str
    id: str
    key: str
    read_only_key: str
    db: Database


@pytest.fixture(scope="module")
def proj(gateway: Gateway, two_projects: list[tuple[str, str, str]]) -> Iterator[Proj]:
    name, key, ro = two_projects[0]
    url = gateway.env.get("TUNEPIPE_DATABASE_URL") or f"sqlite:///{gateway.home / 'tunepipe.db'}"
    db = Database(make_engine(url))
    yield Proj(name, db.run_sync(get_project, name).id, key, ro, db)
    db.dispose()


def model(p: Proj, status: str, **extra: Any) -> FineTune:
    now = now_ms()
    values: dict[str, Any] = {
        "id": uuid7(),
        "project_id": p.id,
        "slug": f"ui-{uuid.uuid4().hex[:10]}",
        "dataset_id": None,
        "provider": "openpipe",
        "base_model": "ui-tiny-base",
        "root_model": "ui-tiny-base",
        "parent_id": None,
        "status": status,
        "error_message": None,
        "description": None,
        "default_temperature": None,
        "training_config": {"provider": "openpipe", "baseModel": "ui-tiny-base"},
        "hyperparameters": {"sft": {"enabled": True, "num_epochs": 2, "batch_size": 4}},
        "pruning_rule_ids": [],
        "metrics": None,
        "train_rows": 12,
        "test_rows": 2,
        "created_at": now,
        "updated_at": now,
        "training_started_at": None,
        "training_finished_at": None,
    }
    values.update(extra)
    ft = FineTune(**values)
    p.db.run_sync(ft_repo.create, ft)
    return ft


def log_lines(steps: range, eval_at: tuple[int, ...] = ()) -> bytes:
    """Progress events as the training process writes them (``training/progress.py``)."""
    out = [{"event": "start", "stage": "sft", "total_steps": 10, "rows": 12}] if steps.start <= 1 else []
    for step in steps:
        out.append({"event": "progress", "stage": "sft", "step": step, "total_steps": 10, "loss": 3.0 / step})
        if step in eval_at:
            out.append({"event": "progress", "stage": "sft", "step": step, "eval_loss": 2.0 / step})
    return b"".join(json.dumps(e).encode() + b"\n" for e in out)


def test_fine_tune_create_form_refuses_then_starts_and_live_status_reaches_error(
    gateway: Gateway, proj: Proj, page: Any, tmp_path: Path
) -> None:
    base = f"ui-empty-{uuid.uuid4().hex[:6]}"  # registered, but its directory has no weights
    proj.db.run_sync(
        lambda c: base_repo.add(c, name=base, source=str(tmp_path), path=str(tmp_path), kind="dir")
    )
    try:
        rows = [
            {
                "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
                "split": "TRAIN" if i < 12 else "TEST",
            }
            for i in range(14)
        ]
        with gateway.http(proj.key) as h:
            ds = h.post("/datasets", json={"name": f"ft-ui-{uuid.uuid4().hex[:6]}"}).json()
            assert h.post(f"/datasets/{ds['id']}/entries", json={"entries": rows}).status_code == 200
        sign_in(page, gateway, proj.key)
        page.get_by_role("navigation", name="Sections").get_by_role("link", name="Fine-tunes").click()
        assert page.get_by_role("heading", level=1).inner_text() == "Fine-tunes"
        page.goto(f"{gateway.root}/datasets/{ds['id']}")
        page.get_by_role("link", name="Train a model on this dataset").click()
        assert page.get_by_label("Dataset").input_value() == ds["id"]  # chosen already
        page.get_by_label("Base model").select_option(base)
        page.get_by_label("Epochs (optional)").fill("3")
        page.get_by_label("Slug").fill("moa-taken")  # a slug the service refuses
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.get_by_role("button", name="Start training").click()
        assert answer.value.status == 400
        assert "moa-" in page.get_by_role("alert").inner_text()
        assert page.get_by_label("Epochs (optional)").input_value() == "3"  # kept as typed

        slug = f"ui-made-{uuid.uuid4().hex[:6]}"
        page.get_by_label("Slug").fill(slug)
        page.get_by_role("button", name="Start training").click()
        page.wait_for_url(f"{gateway.root}/fine-tunes/{slug}")
        assert page.get_by_role("heading", level=1).inner_text() == f"openpipe:{slug}"
        assert '"num_epochs": 3' in page.locator("#ft-hyperparameters").inner_text()
        assert page.get_by_role("link", name=ds["name"]).count() == 1
        # The worker fails the job (no weights); the page, polling, shows it without a reload.
        status = page.locator("#ft-status")
        status.filter(has_text="ERROR").wait_for(timeout=20_000)
        assert "no model directory" in page.locator("#live").inner_text()
        page.reload()
        assert page.get_by_role("button", name="Cancel training").count() == 0  # nothing to cancel
        page.goto(f"{gateway.root}/fine-tunes")
        (row,) = [r for r in page.locator("table.fine-tunes tbody tr").all_inner_texts() if slug in r]
        assert "ERROR" in row and base in row and ds["name"] in row
        assert [e for e in page.errors if "status of 400" not in e] == []  # only the refused create
    finally:
        proj.db.run_sync(base_repo.remove, base)


def _claimed(p: Proj, ft: FineTune) -> Job:
    """The train job of ``ft``, queued and claimed by a stand-in worker in one transaction (the
    in-server worker never sees it queued)."""

    def start(conn: Connection) -> Job:
        job = queue.enqueue(conn, JobKind.TRAIN, p.id, ft.id)
        running = queue.transition(conn, job, JobEvent.CLAIMED, worker_id=STAND_IN)
        assert running is not None
        return running

    return p.db.run_sync(start)


def test_fine_tune_training_progress_and_loss_curve_update_live(
    gateway: Gateway, proj: Proj, page: Any
) -> None:
    ft = model(proj, "QUEUED")
    job = _claimed(proj, ft)
    log = gateway.home / "jobs" / f"{job.id}-{job.attempts}" / "training_log.jsonl"
    log.parent.mkdir(parents=True)
    try:
        progress = {"stage": "sft", "step": 2, "total_steps": 10, "loss": 1.5, "eta_s": 40.0}
        assert proj.db.run_sync(job_repo.set_progress, job.id, STAND_IN, progress)
        log.write_bytes(log_lines(range(1, 3)))
        sign_in(page, gateway, proj.key)
        page.goto(f"{gateway.root}/fine-tunes/{ft.slug}")
        assert page.locator("#ft-status").inner_text() == "TRAINING"
        assert page.locator("#ft-step").inner_text() == "2 / 10"
        assert page.locator("#ft-loss").inner_text() == "1.5000"
        assert page.locator("#ft-eta").inner_text() == "40 s"
        assert page.locator("#ft-progress").evaluate("p => p.value") == 20
        chart = page.locator("#loss-chart")
        chart.and_(page.locator("[data-points='2']")).wait_for()
        assert chart.locator("canvas").count() == 1  # uPlot drew it
        assert page.get_by_role("button", name="Cancel training").count() == 1

        # The training goes on: the page polls, without a reload.
        progress.update(step=5, loss=0.6, eta_s=12.0)
        assert proj.db.run_sync(job_repo.set_progress, job.id, STAND_IN, progress)
        with log.open("ab") as f:
            f.write(log_lines(range(3, 6), eval_at=(4,)))
        page.locator("#ft-step").filter(has_text="5 / 10").wait_for(timeout=8000)
        assert page.locator("#ft-loss").inner_text() == "0.6000"
        page.locator("#loss-chart[data-points='5']").wait_for()
        assert page.locator("#loss-chart canvas").count() == 1
        legend = page.locator("#loss-chart").inner_text()
        assert "Train loss" in legend and "Eval loss" in legend
        if SCREENSHOTS:
            page.screenshot(path=str(Path(SCREENSHOTS) / "fine-tune-1280.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.errors == []
    finally:
        with gateway.http(proj.key) as h:
            assert h.delete(f"/models/{ft.slug}").status_code == 200


def _archive(tmp: Path) -> tuple[bytes, str]:
    adapter = tmp / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "ui-tiny-base"}))
    (adapter / "training_log.jsonl").write_bytes(log_lines(range(1, 11), eval_at=(5, 10)))
    return ft_files.pack(adapter)


def test_fine_tune_deployed_shows_test_outputs_chart_and_downloads_by_session(
    gateway: Gateway, proj: Proj, page: Any, tmp_path: Path
) -> None:
    now = now_ms()
    ft = model(
        proj,
        "DEPLOYED",
        training_started_at=now - 60_000,
        training_finished_at=now,
        metrics={"test_exact_match": 0.5, "sft_steps": 10},
    )
    data, sha = _archive(tmp_path)
    rows = [
        ("e-1", "TEST", {"output": {"role": "assistant", "content": "yes"}}),
        ("e-2", "TEST", {"output": {"role": "assistant", "content": XSS_IMG}}),
    ]
    outputs = [
        Output("e-1", {"role": "assistant", "content": "yes"}, "stop", None, True, 5, 1),
        Output("e-2", {"role": "assistant", "content": f"no {XSS_IMG}"}, "stop", None, False, 5, 3),
    ]

    def write(conn: Connection) -> None:
        ft_repo.save_artifact(conn, ft.id, ft_files.ADAPTER, data, sha)
        ft_repo.add_entries(conn, ft.id, rows)
        ft_repo.save_test_outputs(conn, ft.id, outputs)

    proj.db.run_sync(write)
    sign_in(page, gateway, proj.key)
    page.goto(f"{gateway.root}/fine-tunes/{ft.slug}")
    assert page.locator("#ft-status").inner_text() == "DEPLOYED"
    assert page.locator("#live").get_attribute("hx-trigger") is None  # done: no more polling
    table = [r.split("\t") for r in page.locator("table.test-outputs tbody tr").all_inner_texts()]
    assert [r[1:] for r in table] == [["yes", "yes", "yes"], [XSS_IMG, f"no {XSS_IMG}", "no"]]
    assert page.evaluate("window.__pwned") is None
    page.locator("#loss-chart[data-points='10']").wait_for()  # the log kept in the adapter
    assert '"num_epochs": 2' in page.locator("#ft-hyperparameters").inner_text()

    with page.expect_download() as info:
        page.get_by_role("link", name="LoRA adapter (.tar.gz)").click()
    with tarfile.open(info.value.path(), "r:gz") as tar:
        assert {"adapter_config.json", "training_log.jsonl"} <= set(tar.getnames())
    # Merged weights need the base model's weights, which this installation does not have: the
    # route answers through the session with the service's reason, not a sign-in page or a 500.
    response = page.goto(f"{gateway.root}/fine-tunes/{ft.slug}/weights?dtype=bf16")
    assert response.status == 404 and "no longer registered" in page.locator("main").inner_text()
    assert page.errors == [] or all("404" in e for e in page.errors)


def test_fine_tune_read_only_key_and_another_project(
    gateway: Gateway, proj: Proj, two_projects: list[tuple[str, str, str]], page: Any, context: Any
) -> None:
    ft = model(proj, "QUEUED")
    job = _claimed(proj, ft)
    other_name, other_key, _ = two_projects[1]
    try:
        sign_in(page, gateway, proj.read_only_key)
        page.goto(f"{gateway.root}/fine-tunes")
        assert ft.slug in page.locator("table.fine-tunes").inner_text()
        assert page.get_by_role("button", name="Start training").count() == 0
        page.goto(f"{gateway.root}/fine-tunes/{ft.slug}")
        assert page.locator("#ft-status").inner_text() == "TRAINING"
        assert page.locator("main form[method=post]").count() == 0
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
        cookie = session_cookie(context)["value"]
        for path in (f"/fine-tunes/{ft.slug}/cancel", "/fine-tunes"):
            forged = post_with_cookie(gateway, path, cookie, {"csrf_token": csrf, "slug": "ro-made"})
            assert forged.status_code == 403, path
        assert proj.db.run_sync(job_repo.get, job.id).cancel_requested is False

        # Another project's key: the model is not there at all.
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, gateway, other_key)
        for path in ("", "/live", "/adapter", "/weights"):
            response = page.goto(f"{gateway.root}/fine-tunes/{ft.slug}{path}")
            assert response.status == 404, path
        page.goto(f"{gateway.root}/fine-tunes")
        assert (
            ft.slug not in page.locator("main").inner_text()
            and other_name in page.locator("header").inner_text()
        )
    finally:
        with gateway.http(proj.key) as h:
            assert h.delete(f"/models/{ft.slug}").status_code == 200
