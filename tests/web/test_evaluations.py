"""The Evaluations pages in Chromium: a head-to-head eval created through the form and followed
to the end by polling (Overall Performance as the API reports it, the win-rate chart drawn, the
model-vs-model matrix), its rows (every output and the judge's explanations), a refused form, a
code eval graded by the source typed in the code editor, a criteria eval, escaping of stored
text, read-only keys, and tenancy."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import Gateway, people_entries
from web.conftest import SCREENSHOTS, XSS_IMG, post_with_cookie, session_cookie, sign_in

pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)

MODELS = ("teacher-extract", "gpt-4o-mini")
JUDGE = "anthropic:judge-json"
SLOW_JUDGE = "anthropic:slow-1000-judge-json"


def people_dataset(gateway: Gateway, key: str) -> tuple[str, str]:
    """Four TEST entries (one whose text is markup); returns (id, name)."""
    people = [("Maria", 34, "Lisbon"), ("João", 51, "Porto"), ("Ana", 27, "Braga"), (XSS_IMG, 45, "Faro")]
    name = f"people-{uuid.uuid4().hex[:8]}"
    with gateway.http(key) as h:
        ds = h.post("/datasets", json={"name": name}).json()["id"]
        r = h.post(f"/datasets/{ds}/entries", json={"entries": people_entries(people)})
        assert r.status_code == 200 and r.json()["entries_created"] == 4, r.text
    return str(ds), name


@pytest.fixture(scope="module")
def project(two_projects: list[tuple[str, str, str]]) -> tuple[str, str, str]:
    return two_projects[0]


@pytest.fixture(scope="module")
def api_eval(gateway: Gateway, project: tuple[str, str, str]) -> str:
    """An eval made through the API, for the tests that only read one."""
    _, key, _ = project
    ds, _ = people_dataset(gateway, key)
    with gateway.http(key) as h:
        r = h.post(
            "/evals",
            json={
                "name": "api-made",
                "dataset_id": ds,
                "type": "head_to_head",
                "models": list(MODELS),
                "judge_model": JUDGE,
            },  # fmt: skip
        )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def table(page: Any, selector: str) -> list[list[str]]:
    rows = page.locator(f"{selector} tbody tr")
    return [[c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()] for i in range(rows.count())]


@pytest.mark.slow
def test_evaluations_head_to_head_made_in_the_form_completes_with_the_apis_results(
    gateway: Gateway, project: tuple[str, str, str], page: Any
) -> None:
    _, key, _ = project
    ds, ds_name = people_dataset(gateway, key)
    sign_in(page, gateway, key)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Evaluations").click()
    page.get_by_role("link", name="New evaluation").click()
    name = f"h2h-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Dataset", exact=True).select_option(label=ds_name)
    page.get_by_label("Type", exact=True).select_option("head_to_head")
    page.get_by_label("Models (one a line)").fill("\n".join(MODELS))
    # A judge that takes a second a verdict, so the page shows the eval running first.
    page.get_by_label("Judge model").fill(SLOW_JUDGE)
    assert page.get_by_label("Grader source", exact=False).is_hidden()  # the code type's field
    polled: list[str] = []
    page.on("request", lambda r: polled.append(r.url) if r.url.endswith("/live") else None)
    page.get_by_role("button", name="Start evaluation").click()
    page.wait_for_url(re.compile(r".*/evaluations/[0-9a-f-]{36}$"))
    eval_id = page.url.rsplit("/", 1)[1]
    assert page.get_by_role("heading", level=1).inner_text() == name
    # htmx polls the results until the job is done; no reload.
    expect(page.locator("[data-status]")).to_have_text("COMPLETE", timeout=30_000)
    expect(page.locator("table.overall")).to_be_visible()
    assert polled and page.url.endswith(eval_id)  # the results came by polling, on the same page

    with gateway.http(key) as h:
        api = h.get(f"/evals/{eval_id}").json()
    assert api["status"] == "COMPLETE" and api["dataset_id"] == ds
    headers = [t.strip() for t in page.locator("table.overall thead th").all_inner_texts()]
    assert headers == ["Model", "Win Rate", "Wins", "Ties", "Losses", "Cost"]
    shown = table(page, "table.overall")
    expected = [
        [m["model"], f"{m['score']:.2f}", str(m["wins"]), str(m["ties"]), str(m["losses"])]
        for m in api["results"]["models"]
    ]
    assert [r[:5] for r in shown] == expected
    assert shown[0][:5] == ["teacher-extract", "1.00", "4", "0", "0"]

    # The chart: uPlot drew bars on its canvas.
    canvas = page.locator(".eval-chart canvas")
    expect(canvas).to_have_count(1)
    painted = canvas.evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"
    )
    assert painted > 1000
    assert page.locator(".eval-chart .uplot").count() == 1

    matrix = api["results"]["matrix"]
    grid = table(page, "table.matrix")
    assert grid == [[a, *("—" if a == b else f"{matrix[a][b]:.2f}" for b in matrix)] for a in matrix]
    assert grid[0] == ["teacher-extract", "—", "1.00"]
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "evaluation-1280.png"), full_page=True)
    # At phone width the page still fits: wide tables scroll inside their own box.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator(".eval-chart canvas")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "evaluation-390.png"), full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})

    # The list shows it, complete.
    page.goto(f"{gateway.root}/evaluations")
    listed = next(r for r in table(page, "table.evals") if r[0] == name)
    assert listed[1:6] == ["head_to_head", ds_name, ", ".join(MODELS), "COMPLETE", "4/4"]

    # Rows: every model's output, the dataset's, and the judge's explanation.
    page.goto(f"{gateway.root}/evaluations/{eval_id}/rows")
    with gateway.http(key) as h:
        api_rows = h.get(f"/evals/{eval_id}/rows", params={"limit": 10}).json()
    assert api_rows["total"] == 4
    text = page.locator("main").inner_text()
    assert "Entries 1–4 of 4" in text
    for row in api_rows["data"]:
        for model, out in row["outputs"].items():
            assert out["content"] in text, model
        for j in row["judgements"]:
            assert j["explanation"] and j["explanation"] in text
    assert page.locator("article.eval-row").count() == 4
    assert page.locator("table.verdicts tbody tr").count() == sum(
        len(r["judgements"]) for r in api_rows["data"]
    )
    # Stored markup is text: shown literally, never run.
    assert XSS_IMG in text
    assert page.locator("main img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "evaluation-rows-1280.png"), full_page=False)
    assert page.errors == []


def test_evaluations_form_refusal_shows_the_reason_then_a_code_eval_runs_the_editors_grader(
    gateway: Gateway, project: tuple[str, str, str], page: Any
) -> None:
    _, key, _ = project
    ds, ds_name = people_dataset(gateway, key)
    sign_in(page, gateway, key)
    page.goto(f"{gateway.root}/evaluations/new")
    page.get_by_label("Name", exact=True).fill("one model only")
    page.get_by_label("Dataset", exact=True).select_option(label=ds_name)
    page.get_by_label("Models (one a line)").fill("gpt-4o-mini")
    page.get_by_label("Judge model").fill(JUDGE)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Start evaluation").click()
    assert answer.value.status == 400
    assert "at least two models" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == "one model only"
    # The code editor: Tab indents inside it instead of leaving it.
    page.get_by_label("Type", exact=True).select_option("code")
    page.get_by_label("Grader", exact=True).select_option("custom")
    editor = page.get_by_label("Grader source", exact=False)
    editor.fill("def grader(*a):\nreturn 1.0")
    editor.press("End")
    editor.press("Home")
    editor.press("Tab")
    assert editor.input_value() == "def grader(*a):\n    return 1.0"
    assert "mono" in editor.evaluate("e => getComputedStyle(e).fontFamily").lower()
    # A code eval with that editor's grader: a JSON output scores 1, anything else 0.
    editor.fill(
        "import json\ndef grader(messages, tools, tool_choice, generated_output, dataset_output):\n"
        "\ttry:\n\t\treturn 1.0 if isinstance(json.loads(generated_output['content']), dict) else 0.0\n"
        "\texcept ValueError:\n\t\treturn 0.0\n"
    )
    page.get_by_label("Name", exact=True).fill("json graded")
    page.get_by_label("Models (one a line)").fill("\n".join(MODELS))
    page.get_by_role("button", name="Start evaluation").click()
    page.wait_for_url(re.compile(r".*/evaluations/[0-9a-f-]{36}$"))
    expect(page.locator("[data-status]")).to_have_text("COMPLETE", timeout=30_000)
    headers = [t.strip() for t in page.locator("table.overall thead th").all_inner_texts()]
    assert headers == ["Model", "Score", "Judged", "Errors", "Cost"]
    assert [r[:4] for r in table(page, "table.overall")] == [
        ["teacher-extract", "1.00", "4", "0"],
        ["gpt-4o-mini", "0.00", "4", "0"],
    ]
    assert page.locator("table.matrix").count() == 0
    expect(page.locator(".eval-chart canvas")).to_have_count(1)
    assert "grader(messages" in page.locator("details pre.code").text_content()
    with gateway.http(key) as h:
        assert all(e["name"] != "one model only" for e in h.get("/evals").json()["data"])
    assert [e for e in page.errors if "status of 400" not in e] == []  # the refused form only


def test_evaluations_read_only_key_sees_no_controls_and_its_posts_are_refused(
    gateway: Gateway, project: tuple[str, str, str], api_eval: str, page: Any, context: Any
) -> None:
    _, key, ro = project
    sign_in(page, gateway, ro)
    page.goto(f"{gateway.root}/evaluations")
    assert page.get_by_role("link", name="api-made").count() >= 1
    assert page.get_by_role("link", name="New evaluation").count() == 0
    page.goto(f"{gateway.root}/evaluations/{api_eval}")
    assert page.get_by_role("heading", level=1).inner_text() == "api-made"
    assert page.locator("main form").count() == 0 and page.locator("main button").count() == 0
    missing = page.goto(f"{gateway.root}/evaluations/new")
    assert missing is not None and missing.status == 403
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    cookie = session_cookie(context)["value"]
    with gateway.http(key) as h:
        ds = h.get(f"/evals/{api_eval}").json()["dataset_id"]
        before = len(h.get("/evals").json()["data"])
    forged = post_with_cookie(
        gateway,
        "/evaluations",
        cookie,
        {
            "csrf_token": csrf or "",
            "name": "ro",
            "dataset_id": ds,
            "type": "head_to_head",
            "models": "\n".join(MODELS),
            "judge_model": JUDGE,
        },  # fmt: skip
    )
    assert forged.status_code == 403
    with gateway.http(key) as h:
        assert len(h.get("/evals").json()["data"]) == before


def test_evaluations_of_another_project_are_not_found(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], api_eval: str, page: Any
) -> None:
    _, other_key, _ = two_projects[1]
    sign_in(page, gateway, other_key)
    for path in (
        f"/evaluations/{api_eval}",
        f"/evaluations/{api_eval}/rows",
        f"/evaluations/{api_eval}/live",
    ):
        answer = page.goto(f"{gateway.root}{path}")
        assert answer is not None and answer.status == 404, path
        assert "api-made" not in page.locator("main").inner_text()
    page.goto(f"{gateway.root}/evaluations")
    assert page.get_by_role("link", name="api-made").count() == 0


def test_evaluations_criteria_eval_scores_by_the_criterion_picked_in_the_form(
    gateway: Gateway, project: tuple[str, str, str], page: Any
) -> None:
    _, key, _ = project
    ds, ds_name = people_dataset(gateway, key)
    criterion = f"json-{uuid.uuid4().hex[:6]}"
    with gateway.http(key) as h:
        r = h.post(
            "/criteria", json={"name": criterion, "instructions": "JSON objects pass.", "judge_model": JUDGE}
        )
        assert r.status_code == 201, r.text
    sign_in(page, gateway, key)
    page.goto(f"{gateway.root}/evaluations/new")
    page.get_by_label("Name", exact=True).fill("by criterion")
    page.get_by_label("Dataset", exact=True).select_option(label=ds_name)
    page.get_by_label("Type", exact=True).select_option("criteria")
    assert page.get_by_label("Judge model").is_hidden()  # head-to-head's field
    page.get_by_label(f"{criterion}@v1").check()
    page.get_by_label("Models (one a line)").fill("\n".join(MODELS))
    page.get_by_role("button", name="Start evaluation").click()
    page.wait_for_url(re.compile(r".*/evaluations/[0-9a-f-]{36}$"))
    eval_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("[data-status]")).to_have_text("COMPLETE", timeout=30_000)
    with gateway.http(key) as h:
        api = h.get(f"/evals/{eval_id}").json()
    assert api["criteria"] == [f"{criterion}@v1"] and api["dataset_id"] == ds
    expected = [
        [m["model"], f"{m['score']:.2f}", str(m["judged"]), str(m["errors"])]
        for m in api["results"]["models"]
    ]
    assert [r[:4] for r in table(page, "table.overall")] == expected
    assert expected[0][:2] == ["teacher-extract", "1.00"]
    assert f"{criterion}@v1" in page.locator("dl.facts").inner_text()
    assert page.errors == []
