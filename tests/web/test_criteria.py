"""The Criteria pages in Chromium: create a criterion and edit it (a second version), the
alignment page (the judge run as a job with its progress, rows labelled PASS/FAIL with htmx, the
agreement recomputed as the API computes it), escaping of stored text, read-only keys, and
tenancy."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import Gateway
from web.conftest import SCREENSHOTS, XSS_IMG, post_with_cookie, session_cookie, sign_in

pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)

JUDGE = "anthropic:judge-json"
STATS = ("accuracy", "precision", "recall", "f1", "kappa")


@pytest.fixture(scope="module")
def project(two_projects: list[tuple[str, str, str]]) -> tuple[str, str, str]:
    return two_projects[0]


def _row(output: str, judgement: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "messages": [{"role": "user", "content": f"Extract: {output[:12]}"}],
        "output": {"role": "assistant", "content": output},
    }
    if judgement:
        row["judgement"] = judgement
    return row


@pytest.fixture(scope="module")
def aligned(gateway: Gateway, project: tuple[str, str, str]) -> str:
    """A criterion whose judge passes JSON objects, with five rows: two JSON outputs the humans
    passed, a refusal they failed, a text they passed (the judge fails it: the disagreement) and
    an unlabelled one whose text is markup."""
    _, key, _ = project
    name = f"json-{uuid.uuid4().hex[:8]}"
    rows = [
        _row('{"name": "Ana"}', "PASS"),
        _row('{"name": "Rui"}', "PASS"),
        _row("I cannot do that.", "FAIL"),
        _row("Name: Maria, polite text", "PASS"),
        _row(XSS_IMG, None),
    ]
    with gateway.http(key) as h:
        r = h.post(
            "/criteria", json={"name": name, "instructions": "Pass JSON objects.", "judge_model": JUDGE}
        )
        assert r.status_code == 201, r.text
        r = h.post(f"/criteria/{name}/alignment", json={"rows": rows})
        assert r.status_code == 201 and r.json()["rows_added"] == 5, r.text
    return name


def shown_stats(page: Any) -> dict[str, str]:
    return {
        s: page.locator(f'[data-stat="{s}"]').inner_text().strip() for s in (*STATS, "compared", "unlabelled")
    }


def api_stats(gateway: Gateway, key: str, name: str) -> dict[str, Any]:
    with gateway.http(key) as h:
        r = h.get(f"/criteria/{name}/alignment/stats")
    assert r.status_code == 200, r.text
    return dict(r.json())


def as_shown(stats: dict[str, Any]) -> dict[str, str]:
    out = {s: "—" if stats[s] is None else f"{stats[s]:.2f}" for s in STATS}
    return {**out, "compared": str(stats["compared"]), "unlabelled": str(stats["unlabelled"])}


def test_criteria_create_then_edit_makes_a_second_version(
    gateway: Gateway, project: tuple[str, str, str], page: Any
) -> None:
    _, key, _ = project
    name = f"polite-{uuid.uuid4().hex[:6]}"
    sign_in(page, gateway, key)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Criteria").click()
    page.get_by_role("link", name="New criterion").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Description").fill("Answers are polite")
    page.get_by_label("Judge model").fill("anthropic:judge-polite")
    page.get_by_label("Instructions").fill("PASS when the answer says please or thank you.")
    page.get_by_role("button", name="Create criterion").click()
    page.wait_for_url(f"{gateway.root}/criteria/{name}")
    assert page.get_by_role("heading", level=1).inner_text() == f"{name}@v1"
    assert "PASS when the answer says please" in page.locator("pre.instructions").inner_text()

    page.get_by_role("link", name="Edit (new version)").click()
    assert page.get_by_label("Name", exact=True).get_attribute("readonly") is not None
    assert page.get_by_label("Instructions").input_value() == "PASS when the answer says please or thank you."
    page.get_by_label("Instructions").fill("PASS only when the answer says thank you.")
    page.get_by_label("Judge model").fill("anthropic:judge-contains-thank")
    page.get_by_role("button", name="Save as a new version").click()
    page.wait_for_url(f"{gateway.root}/criteria/{name}")
    assert page.get_by_role("heading", level=1).inner_text() == f"{name}@v2"
    versions = page.locator("table.versions tbody tr").all_inner_texts()
    assert [v.split("\t")[0] for v in versions] == [f"{name}@v2", f"{name}@v1"]
    with gateway.http(key) as h:
        api = h.get(f"/criteria/{name}/versions").json()["data"]
    assert [(v["id"], v["judge_model"]) for v in api] == [
        (f"{name}@v1", "anthropic:judge-polite"),
        (f"{name}@v2", "anthropic:judge-contains-thank"),
    ]
    assert api[1]["instructions"] == "PASS only when the answer says thank you."
    assert api[1]["description"] == "Answers are polite"
    # The earlier version stays readable.
    page.get_by_role("link", name=f"{name}@v1").click()
    assert page.get_by_role("heading", level=1).inner_text() == f"{name}@v1"
    assert "please or thank you" in page.locator("pre.instructions").inner_text()
    # A row added by hand to the (empty) alignment set, labelled as it is added.
    page.goto(f"{gateway.root}/criteria/{name}/alignment")
    assert "no rows yet" in page.locator("main").inner_text()
    page.get_by_text("Add a row").click()
    page.get_by_label("Input (the user's message)").fill("Can you help?")
    page.get_by_label("Output (the assistant's answer)").fill("Sure, thank you for asking.")
    page.get_by_label("Label", exact=True).select_option("PASS")
    page.get_by_role("button", name="Add row").click()
    page.wait_for_url(f"{gateway.root}/criteria/{name}/alignment")
    assert "Sure, thank you for asking." in page.locator("table.alignment-rows").inner_text()
    with gateway.http(key) as h:
        added = h.get(f"/criteria/{name}/alignment").json()["data"]
    assert [(r["messages"][0]["content"], r["output"]["content"], r["judgement"]) for r in added] == [
        ("Can you help?", "Sure, thank you for asking.", "PASS")
    ]
    page.goto(f"{gateway.root}/criteria")
    listed = page.locator("table.criteria tbody tr", has_text=name).inner_text()
    assert "v2" in listed and "judge-contains-thank" in listed
    if SCREENSHOTS:
        page.goto(f"{gateway.root}/criteria/{name}")
        page.screenshot(path=str(Path(SCREENSHOTS) / "criterion-1280.png"), full_page=False)
    assert page.errors == []


@pytest.mark.slow
def test_criteria_alignment_judge_run_and_labels_change_the_agreement_as_the_api_does(
    gateway: Gateway, project: tuple[str, str, str], aligned: str, page: Any
) -> None:
    _, key, _ = project
    name = aligned
    sign_in(page, gateway, key)
    page.goto(f"{gateway.root}/criteria/{name}")
    page.get_by_role("link", name="Alignment", exact=True).click()
    page.wait_for_url(f"{gateway.root}/criteria/{name}/alignment")
    assert page.locator("table.alignment-rows tbody tr").count() == 5
    assert shown_stats(page)["compared"] == "0"  # nothing judged yet

    page.get_by_role("button", name="Run the judge over the set").click()
    page.wait_for_url(re.compile(rf".*/criteria/{name}/alignment\?job=.+"))
    expect(page.locator("[data-job-status]")).to_have_text("DONE", timeout=30_000)
    # Once the job is done, the agreement comes in by itself (no reload).
    expect(page.locator('[data-stat="compared"]')).to_have_text("4")
    assert re.search(r"\?job=", page.url)
    api = api_stats(gateway, key, name)
    assert api["compared"] == 4 and api["accuracy"] == 0.75
    assert shown_stats(page) == as_shown(api)
    disagreeing = page.locator("tr.disagree")
    expect(disagreeing).to_have_count(1)
    assert "Name: Maria" in disagreeing.inner_text()
    assert "judge-json looked at" in disagreeing.inner_text()  # the judge's explanation
    assert len(api["disagreements"]) == 1 and "Name: Maria" in page.locator("ul.disagreements").inner_text()

    # The humans change their mind on the disagreeing row: htmx swaps in the new agreement.
    row_id = disagreeing.get_attribute("data-row-id")
    with page.expect_response(lambda r: r.url.endswith(f"/{row_id}/label")) as answer:
        disagreeing.get_by_role("button", name=re.compile("^FAIL")).click()
    assert answer.value.status == 200
    expect(page.locator(f'[data-label-of="{row_id}"]')).to_have_text("FAIL")
    # The button pressed keeps the focus across the swap, for keyboard users.
    assert page.evaluate("document.activeElement.id") == f"label-{row_id}-FAIL"
    api = api_stats(gateway, key, name)
    assert api["accuracy"] == 1.0 and api["kappa"] == 1.0
    assert shown_stats(page) == as_shown(api)
    expect(page.locator("tr.disagree")).to_have_count(0)

    # Labelling the unlabelled row brings it into the comparison.
    unlabelled = page.locator("table.alignment-rows tbody tr", has_text=XSS_IMG)
    unlabelled.get_by_role("button", name=re.compile("^PASS")).click()
    expect(page.locator('[data-stat="compared"]')).to_have_text("5")
    api = api_stats(gateway, key, name)
    assert shown_stats(page) == as_shown(api) and api["compared"] == 5 and api["accuracy"] == 0.8
    with gateway.http(key) as h:
        labels = {r["id"]: r["judgement"] for r in h.get(f"/criteria/{name}/alignment").json()["data"]}
    assert labels[row_id] == "FAIL" and sorted(v for v in labels.values()) == [
        "FAIL",
        "FAIL",
        "PASS",
        "PASS",
        "PASS",
    ]
    # Stored markup is text.
    assert XSS_IMG in page.locator("table.alignment-rows").inner_text()
    assert page.locator("main img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "criterion-alignment-1280.png"), full_page=True)
    assert page.errors == []


def test_criteria_read_only_key_sees_no_controls_and_its_posts_are_refused(
    gateway: Gateway, project: tuple[str, str, str], aligned: str, page: Any, context: Any
) -> None:
    _, key, ro = project
    sign_in(page, gateway, ro)
    page.goto(f"{gateway.root}/criteria")
    assert page.get_by_role("link", name=aligned).count() == 1
    assert page.get_by_role("link", name="New criterion").count() == 0
    page.goto(f"{gateway.root}/criteria/{aligned}")
    assert page.get_by_role("link", name="Edit (new version)").count() == 0
    with gateway.http(ro) as h:
        (compared,) = h.get(f"/criteria/{aligned}/alignment/compare").json()["data"]
    cells = page.locator("table.versions tbody tr").first.locator("td").all_inner_texts()
    assert cells[0] == f"{aligned}@v1"
    assert cells[3:6] == [
        as_shown(compared)["accuracy"],
        as_shown(compared)["kappa"],
        str(compared["compared"]),
    ]
    page.goto(f"{gateway.root}/criteria/{aligned}/alignment")
    assert page.locator("table.alignment-rows tbody tr").count() == 5
    assert page.locator("main form").count() == 0 and page.locator("main button").count() == 0
    for path in ("/criteria/new", f"/criteria/{aligned}/edit"):
        answer = page.goto(f"{gateway.root}{path}")
        assert answer is not None and answer.status == 403, path
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    cookie = session_cookie(context)["value"]
    with gateway.http(key) as h:
        before = h.get(f"/criteria/{aligned}/alignment").json()["data"]
    row_id = before[0]["id"]
    posts = {
        f"/criteria/{aligned}/alignment/{row_id}/label": {"judgement": "FAIL"},
        f"/criteria/{aligned}/versions": {"instructions": "x", "judge_model": JUDGE},
        "/criteria": {"name": f"ro-{uuid.uuid4().hex[:6]}", "instructions": "x", "judge_model": JUDGE},
        f"/criteria/{aligned}/alignment/run": {},
        f"/criteria/{aligned}/alignment/rows": {"input": "a", "output": "b"},
    }
    for path, data in posts.items():
        assert post_with_cookie(gateway, path, cookie, {"csrf_token": csrf, **data}).status_code == 403, path
    with gateway.http(key) as h:
        assert h.get(f"/criteria/{aligned}/alignment").json()["data"] == before
        assert len(h.get(f"/criteria/{aligned}/versions").json()["data"]) == 1


def test_criteria_of_another_project_are_not_found(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], aligned: str, page: Any, context: Any
) -> None:
    _, other_key, _ = two_projects[1]
    sign_in(page, gateway, other_key)
    for path in (f"/criteria/{aligned}", f"/criteria/{aligned}/alignment", f"/criteria/{aligned}/edit"):
        answer = page.goto(f"{gateway.root}{path}")
        assert answer is not None and answer.status == 404, path
        assert "Extract:" not in page.locator("main").inner_text()
    page.goto(f"{gateway.root}/criteria")
    assert page.get_by_role("link", name=aligned).count() == 0
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    cookie = session_cookie(context)["value"]
    forged = post_with_cookie(
        gateway, f"/criteria/{aligned}/alignment/x/label", cookie, {"csrf_token": csrf, "judgement": "PASS"}
    )
    assert forged.status_code == 404
