"""A fine-tune trained for real from the Fine-tunes form, watched in Chromium until DEPLOYED.

The base is the random-init tiny model the engine tests build; the worker inside the server
trains it for a few steps. The model page is never reloaded: its own htmx polling carries it
through the statuses, redraws the loss curve and, once done, brings in the test-set outputs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Gateway
from engine.conftest import build_test_model
from web.conftest import SCREENSHOTS, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)]

RULE = "You are the ACME support assistant. Answer yes or no."
PAINTED = (
    "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
    " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"
)


@pytest.fixture(scope="module")
def tiny_base(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tiny base model, registered on the installation under a name of its own."""
    path = build_test_model(tmp_path_factory.mktemp("ui-ft-base"), seed=3)
    name = f"ui-tiny-{uuid.uuid4().hex[:6]}"
    added = gateway.cli("base-models", "add", str(path), "--name", name, check=False)
    assert added.returncode == 0, added.stdout + added.stderr
    yield name
    gateway.cli("base-models", "remove", name, check=False)


def _dataset(gateway: Gateway, key: str, train: int = 16, test: int = 2) -> dict[str, Any]:
    def row(i: int, split: str) -> dict[str, Any]:
        messages = [
            {"role": "system", "content": RULE},
            {"role": "user", "content": f"is the red car number {i} on the road"},
            {"role": "assistant", "content": "yes"},
        ]
        return {"messages": messages, "split": split}

    rows = [row(10 + i, "TRAIN") for i in range(train)] + [row(10 + train + i, "TEST") for i in range(test)]
    with gateway.http(key) as h:
        ds = h.post("/datasets", json={"name": f"ui-train-{uuid.uuid4().hex[:6]}"})
        assert ds.status_code in (200, 201), ds.text
        made = h.post(f"/datasets/{ds.json()['id']}/entries", json={"entries": rows})
        assert made.status_code == 200, made.text
    return dict(ds.json())


def test_fine_tune_trained_from_the_form_reaches_deployed_with_a_loss_curve(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], tiny_base: str, page: Any
) -> None:
    _, key, _ = two_projects[0]
    ds = _dataset(gateway, key)
    slug = f"ui-trained-{uuid.uuid4().hex[:6]}"
    sign_in(page, gateway, key, "/fine-tunes")
    page.get_by_label("Dataset").select_option(label=ds["name"])
    page.get_by_label("Base model").select_option(tiny_base)
    page.get_by_label("Slug").fill(slug)
    page.get_by_label("Epochs (optional)").fill("5")
    page.get_by_label("Learning-rate multiplier (optional)").fill("50")
    page.get_by_label("Batch size (optional)").fill("4")
    started = time.monotonic()
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(f"{gateway.root}/fine-tunes/{slug}")

    # Watch the page (no reload) until the status settles, noting each status it shows.
    status = page.locator("#ft-status")
    seen = [status.inner_text()]
    while seen[-1] not in ("DEPLOYED", "ERROR") and time.monotonic() - started < 300:
        page.wait_for_timeout(500)
        shown = status.inner_text()
        if shown != seen[-1]:
            seen.append(shown)
    elapsed = time.monotonic() - started
    print(f"trained to {seen[-1]} in {elapsed:.1f} s through {seen}")
    assert seen[-1] == "DEPLOYED", page.locator("#live").inner_text()
    assert "TRAINING" in seen and set(seen) <= {"PENDING", "QUEUED", "TRAINING", "DEPLOYED"}
    assert page.locator("#live").get_attribute("hx-trigger") is None  # done: polling stopped

    # The loss curve, drawn by uPlot from the training log.
    chart = page.locator("#loss-chart")
    chart.and_(page.locator("[data-points]")).wait_for()
    assert int(chart.get_attribute("data-points") or 0) >= 2
    assert chart.locator("canvas").evaluate(PAINTED) > 500
    # The test-set outputs came in with the final state: one row per TEST entry.
    outputs = page.locator("table.test-outputs tbody tr")
    outputs.first.wait_for(timeout=10_000)
    rows = [r.split("\t") for r in outputs.all_inner_texts()]
    assert len(rows) == 2 and all(r[1] == "yes" and r[2].strip() for r in rows), rows
    assert page.get_by_role("link", name="LoRA adapter (.tar.gz)").count() == 1
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "fine-tune-deployed-1280.png"), full_page=True)
    assert page.errors == []
