"""Every page of the web UI, in Chromium at desktop and phone width: each answers 200, logs no
console error (a CSP violation included), fits 390 px without scrolling sideways, labels every
form control and has exactly one ``<h1>``.

The pages with an id in their path are visited with real ones made in setup through the API: a
logged call, a dataset and one of its entries, an eval, a criterion with alignment rows and a
fine-tune (on a base model registered without weights, so the worker ends it in ERROR).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Gateway
from tunepipe.db import base_models as base_repo
from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from web.conftest import sign_in

pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)

WIDTHS = (1280, 390)
# What each page is checked for, in the page: sideways scroll, unlabelled controls, <h1> count.
AUDIT = """() => {
  const unlabelled = [...document.querySelectorAll("input, select, textarea")]
    .filter(el => el.type !== "hidden")
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                  && !el.getAttribute("aria-labelledby"))
    .map(el => el.outerHTML.slice(0, 120));
  return {
    scroll: document.documentElement.scrollWidth,
    // the innermost elements that stick out, to name in the failure
    wide: [...document.querySelectorAll("body *")]
      .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(-3).map(el => `<${el.tagName.toLowerCase()} class="${el.className}" id="${el.id}">`),
    width: window.innerWidth,
    unlabelled: unlabelled,
    h1: document.querySelectorAll("h1").length,
  };
}"""


@pytest.fixture(scope="module")
def paths(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Every page the UI has, with ids of things made here for the ones that need them."""
    _, key, _ = two_projects[0]
    run = uuid.uuid4().hex[:10]
    suffix = uuid.uuid4().hex[:8]
    with gateway.http(key) as h:
        chat = h.post(
            "/chat/completions",
            json={
                "model": "openai:gpt-4o-mini",
                "messages": [{"role": "user", "content": "a page for every thing"}],
                "metadata": {"run": run},
            },
        )
        assert chat.status_code == 200, chat.text
        (call,) = h.get("/logs", params={"metadata.run": run}).json()["data"]
        ds = h.post("/datasets", json={"name": f"pages-{suffix}"}).json()["id"]
        rows = [
            {
                "messages": [
                    {"role": "user", "content": f"question {i}"},
                    {"role": "assistant", "content": f"answer {i}"},
                ],
                "split": "TEST" if i < 2 else "TRAIN",  # training needs 10 TRAIN rows
            }
            for i in range(12)
        ]
        assert h.post(f"/datasets/{ds}/entries", json={"entries": rows}).status_code == 200
        entry = h.get(f"/datasets/{ds}/entries", params={"limit": 1}).json()["data"][0]["id"]
        made = h.post(
            "/evals",
            json={
                "name": f"pages-{suffix}",
                "dataset_id": ds,
                "type": "head_to_head",
                "models": ["teacher-extract", "gpt-4o-mini"],
                "judge_model": "anthropic:judge-json",
            },
        )
        assert made.status_code == 201, made.text
        eval_id = made.json()["id"]
        criterion = f"pages-{suffix}"
        made = h.post(
            "/criteria",
            json={"name": criterion, "instructions": "Pass JSON.", "judge_model": "anthropic:judge-json"},
        )
        assert made.status_code == 201, made.text
        alignment = [
            {
                "messages": [{"role": "user", "content": "Extract"}],
                "output": {"role": "assistant", "content": '{"a": 1}'},
                "judgement": "PASS",
            }
        ]
        assert h.post(f"/criteria/{criterion}/alignment", json={"rows": alignment}).status_code == 201
    # A fine-tune on a base model with no weights: created as the form does, errored by the worker.
    url = gateway.env.get("TUNEPIPE_DATABASE_URL") or f"sqlite:///{gateway.home / 'tunepipe.db'}"
    db = Database(make_engine(url))
    empty = tmp_path_factory.mktemp("pages-empty-base")
    base = f"pages-empty-{suffix}"
    db.run_sync(lambda c: base_repo.add(c, name=base, source=str(empty), path=str(empty), kind="dir"))
    slug = f"pages-{suffix}"
    with gateway.http(key) as h:
        made = h.post(
            "/models",
            json={
                "datasetId": ds,
                "slug": slug,
                "trainingConfig": {"provider": "openpipe", "baseModel": base},
            },
        )
        assert made.status_code in (200, 201), made.text
    try:
        yield [
            "/logs",
            f"/logs/{call['id']}",
            "/datasets",
            f"/datasets/{ds}",
            f"/datasets/{ds}/entries/{entry}",
            "/fine-tunes",
            f"/fine-tunes/{slug}",
            "/evaluations",
            "/evaluations/new",
            f"/evaluations/{eval_id}",
            f"/evaluations/{eval_id}/rows",
            "/criteria",
            "/criteria/new",
            f"/criteria/{criterion}",
            f"/criteria/{criterion}/edit",
            f"/criteria/{criterion}/alignment",
            "/usage",
            "/usage?range=24h",
            "/usage?range=7d",
            "/usage?range=30d",
            "/settings",
        ]
    finally:
        db.run_sync(base_repo.remove, base)
        db.dispose()


def _problems(page: Any, path: str, width: int, status: int) -> list[str]:
    found = page.evaluate(AUDIT)
    problems = [] if status == 200 else [f"status {status}"]
    if found["scroll"] > found["width"]:
        problems.append(f"scrolls sideways: {found['scroll']} > {found['width']} px ({found['wide']})")
    problems += [f"unlabelled control {c}" for c in found["unlabelled"]]
    if found["h1"] != 1:
        problems.append(f"{found['h1']} <h1> elements")
    problems += [f"console: {e}" for e in page.errors]
    page.errors.clear()
    return [f"{path} @ {width} px: {p}" for p in problems]


def test_pages_every_page_loads_clean_labelled_and_fits_a_phone(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], paths: list[str], page: Any
) -> None:
    _, key, _ = two_projects[0]
    problems: list[str] = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        response = page.goto(f"{gateway.root}/sign-in")
        page.wait_for_load_state("load")
        problems += _problems(page, "/sign-in", width, response.status)
    sign_in(page, gateway, key)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for path in paths:
            response = page.goto(f"{gateway.root}{path}")
            page.wait_for_load_state("load")
            page.wait_for_timeout(50)  # a deferred script's errors land after `load`
            problems += _problems(page, path, width, response.status)
    assert len(paths) >= 20
    assert problems == []
