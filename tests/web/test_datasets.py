"""The Datasets pages in Chromium: list and create, JSONL upload (line-numbered errors, nothing
added; then entries and a full progress bar), the entry editor (inline errors from the API's own
validation), pruning rules with the tokens they save, the JSONL export, escaping of stored text,
read-only keys, and tenancy."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import Gateway
from web.conftest import SCREENSHOTS, XSS_IMG, _chat, post_with_cookie, session_cookie, sign_in

pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)

SYSTEM = "You are the helpful assistant of the dataset page tests, always polite and short."


def line(question: str, answer: str, split: str | None = None) -> str:
    entry: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }
    if split:
        entry["split"] = split
    return json.dumps(entry)


def new_dataset(gateway: Gateway, key: str, lines: list[str] = ()) -> str:  # type: ignore[assignment]
    with gateway.http(key) as h:
        r = h.post("/datasets", json={"name": f"ds-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 200, r.text
        dataset_id = str(r.json()["id"])
        if lines:
            entries = [json.loads(x) for x in lines]
            r = h.post(f"/datasets/{dataset_id}/entries", json={"entries": entries})
            assert r.status_code == 200 and r.json()["entries_created"] == len(lines), r.text
    return dataset_id


def entry_rows(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("table.entries tbody tr").all_inner_texts()]


def test_datasets_create_upload_errors_then_entries_with_full_progress(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any, tmp_path: Path
) -> None:
    _, key, _ = two_projects[0]
    sign_in(page, gateway, key)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Datasets").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Datasets"
    name = f"support {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="New dataset").click()
    page.wait_for_url(re.compile(r".*/datasets/[^/]+$"))
    assert page.get_by_role("heading", level=1).inner_text() == name
    dataset_url = page.url

    bad = tmp_path / "bad.jsonl"
    bad.write_text(line("one", "1") + "\n{not json\n" + line("three", "3") + '\n{"messages": []}\n')
    page.get_by_label("JSONL file").set_input_files(str(bad))
    page.get_by_role("button", name="Upload").click()
    alert = page.locator("#upload-result").get_by_role("alert")
    alert.wait_for()
    assert "2 invalid lines: nothing was added" in alert.inner_text()
    errors = page.locator("ul.line-errors li").all_inner_texts()
    assert errors[0].startswith("Line 2: invalid JSON") and errors[1].startswith("Line 4:"), errors
    assert entry_rows(page) == []

    good = tmp_path / "good.jsonl"
    good.write_text(line("refused", "refused") + "\n")
    # A wrong CSRF token: refused (403), said so in the page, nothing added.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    page.evaluate("document.querySelector('meta[name=csrf-token]').setAttribute('content', 'forged')")
    page.get_by_label("JSONL file").set_input_files(str(good))
    page.get_by_role("button", name="Upload").click()
    page.locator("#upload-result").get_by_role("alert").filter(has_text="HTTP 403").wait_for()
    assert entry_rows(page) == []
    page.evaluate(f"document.querySelector('meta[name=csrf-token]').setAttribute('content', '{token}')")

    good.write_text(
        "\n".join(
            [
                line("first question", "first answer", "TRAIN"),
                line(XSS_IMG, "second answer", "TEST"),
                line("third question", "third answer", "TRAIN"),
            ]
        )
        + "\n"
    )
    page.get_by_label("JSONL file").set_input_files(str(good))
    page.get_by_role("button", name="Upload").click()
    page.locator("#upload-result").get_by_role("status").wait_for()
    assert page.locator("#upload-result").inner_text() == "Added 3 entries from 3 lines."
    assert page.locator("#upload-progress").evaluate("p => p.value") == 100
    assert page.locator("#upload-percent").inner_text() == "100 %"
    listed = entry_rows(page)
    assert len(listed) == 3 and sum(r.startswith("TRAIN") for r in listed) == 2
    assert "3 entries: 2 train, 1 test." in page.locator("#ds-counts").inner_text()
    # Stored text is text: the <img onerror> shows literally and never runs.
    assert any(XSS_IMG in r for r in listed)
    assert page.evaluate("window.__pwned") is None
    assert [e for e in page.errors if "403" not in e] == []  # only the forged upload

    page.goto(f"{gateway.root}/datasets")
    (row,) = [r for r in page.locator("table.datasets tbody tr").all_inner_texts() if r.startswith(name)]
    assert row.split("\t")[1:4] == ["3", "2", "1"]
    page.goto(f"{dataset_url}?split=TEST")
    assert [r.split("\t")[0] for r in entry_rows(page)] == ["TEST"]
    page.goto(dataset_url)
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dataset-1280.png"), full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "dataset-390.png"), full_page=False)


def test_dataset_entry_editor_shows_validation_errors_inline_and_saves(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, _ = two_projects[0]
    dataset_id = new_dataset(gateway, key, [line(XSS_IMG, "old answer", "TRAIN")])
    sign_in(page, gateway, key)
    page.goto(f"{gateway.root}/datasets/{dataset_id}")
    page.locator("table.entries tbody tr a").first.click()
    page.wait_for_url(re.compile(r".*/entries/.+"))
    assert json.loads(page.get_by_label("Input messages (JSON array)").input_value())[1]["content"] == XSS_IMG

    output = page.get_by_label("Output (one assistant message, JSON)")
    output.fill('{"role": "assistant", "content": "new answer"')  # not JSON
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save entry").click()
    assert answer.value.status == 400
    assert "Output: not valid JSON" in page.get_by_role("alert").inner_text()
    output.fill('{"role": "user", "content": "not an assistant"}')  # JSON, refused by the service
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save entry").click()
    assert answer.value.status == 400
    assert "assistant" in page.get_by_role("alert").inner_text()
    assert "not an assistant" in output.input_value()  # what was typed is kept

    output.fill('{"role": "assistant", "content": "new answer"}')
    page.get_by_label("Split").select_option("TEST")
    page.get_by_role("button", name="Save entry").click()
    page.get_by_role("status").wait_for()
    with gateway.http(key) as h:
        (entry,) = h.get(f"/datasets/{dataset_id}/entries").json()["data"]
    assert entry["split"] == "TEST"
    assert entry["messages"][-1] == {"role": "assistant", "content": "new answer"}
    assert page.evaluate("window.__pwned") is None
    assert [e for e in page.errors if "status of 400" not in e] == []  # only the two refused saves


def test_dataset_pruning_rule_saves_tokens_and_export_downloads_entries(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, _ = two_projects[0]
    dataset_id = new_dataset(gateway, key, [line(f"question {i}", f"answer {i}", "TRAIN") for i in range(4)])
    sign_in(page, gateway, key)
    page.goto(f"{gateway.root}/datasets/{dataset_id}")
    assert page.locator("#tokens-saved").inner_text() == "0"
    page.get_by_label("Text to match").fill(SYSTEM)
    page.get_by_role("button", name="Add rule").click()
    page.wait_for_url(re.compile(r".*#pruning$"))
    saved = int(page.locator("#tokens-saved").inner_text())
    (rule,) = page.locator("table.rules tbody tr").all_inner_texts()
    assert rule.split("\t")[1] == "4" and saved > 0 and int(rule.split("\t")[2]) == saved

    with page.expect_download() as info:
        page.get_by_role("link", name="Export JSONL").click()
    exported = [json.loads(x) for x in Path(info.value.path()).read_text().splitlines()]
    assert sorted(e["messages"][1]["content"] for e in exported) == [f"question {i}" for i in range(4)]
    assert all(e["split"] == "TRAIN" for e in exported)

    page.get_by_role("button", name="Remove").click()
    page.wait_for_url(re.compile(r".*#pruning$"))
    assert page.locator("#tokens-saved").inner_text() == "0"  # waits for the rules to load
    assert page.locator("table.rules").count() == 0


def test_dataset_read_only_key_sees_no_controls_and_its_posts_are_refused(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any, context: Any
) -> None:
    _, key, read_only = two_projects[0]
    dataset_id = new_dataset(gateway, key, [line("ro question", "ro answer", "TRAIN")])
    sign_in(page, gateway, read_only)
    page.goto(f"{gateway.root}/datasets")
    assert page.get_by_role("button", name="New dataset").count() == 0
    page.goto(f"{gateway.root}/datasets/{dataset_id}")
    main = page.locator("main")
    assert "ro question" in main.inner_text()
    page.locator("#tokens-saved").wait_for()  # the pruning rules, loaded after the page
    assert main.locator("form[method=post]").count() == 0
    assert page.get_by_label("JSONL file").count() == 0 and page.get_by_label("Text to match").count() == 0
    page.locator("table.entries tbody tr a").first.click()
    assert "ro answer" in main.inner_text() and main.locator("textarea").count() == 0
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    cookie = session_cookie(context)["value"]
    for path, data in (
        ("/datasets", {"name": "ro-made"}),
        (f"/datasets/{dataset_id}/pruning-rules", {"text": "ro question"}),
        (f"/datasets/{dataset_id}/import-logs", {"model": "openai:gpt-4o-mini"}),
        (f"/datasets/{dataset_id}/relabel", {"model": "openai:gpt-4o-mini"}),
        (page.url.removeprefix(gateway.root), {"messages": "[]", "output": "{}", "split": "TEST"}),
    ):
        assert post_with_cookie(gateway, path, cookie, {**data, "csrf_token": csrf}).status_code == 403, path
    with gateway.http(key) as h:
        assert h.get(f"/datasets/{dataset_id}/pruning-rules").json()["data"] == []
        assert all(d["name"] != "ro-made" for d in h.get("/datasets").json()["data"])
        assert h.get(f"/datasets/{dataset_id}/entries").json()["data"][0]["split"] == "TRAIN"
        assert h.get(f"/datasets/{dataset_id}/jobs").json()["data"] == []


def test_dataset_of_another_project_is_not_found(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, _ = two_projects[0]
    _, other_key, _ = two_projects[1]
    theirs = new_dataset(gateway, other_key, [line("their secret", "theirs", "TRAIN")])
    sign_in(page, gateway, key)
    for path in (f"/datasets/{theirs}", f"/datasets/{theirs}/export"):
        response = page.goto(f"{gateway.root}{path}")
        assert response.status == 404, path
        assert "their secret" not in page.content()
    page.goto(f"{gateway.root}/datasets")
    assert page.locator(f'a[href="/datasets/{theirs}"]').count() == 0


@pytest.mark.slow
def test_dataset_import_from_logs_then_relabel_run_as_jobs_followed_live(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, _ = two_projects[0]
    run = uuid.uuid4().hex[:10]
    for i in range(2):
        _chat(gateway, key, "openai:gpt-4o-mini", f"imported question {i}", {"run": run})
    _chat(gateway, key, "openai:gpt-4o-mini", "another run's question", {"run": "other"})
    dataset_id = new_dataset(gateway, key)
    sign_in(page, gateway, key)
    page.goto(f"{gateway.root}/datasets/{dataset_id}")
    page.locator("summary", has_text="Import from request logs").click()
    page.get_by_label("Metadata key").fill("run")
    page.get_by_label("Metadata value").fill(run)
    page.get_by_role("button", name="Import matching calls").click()
    page.wait_for_url(re.compile(r".*#jobs$"))
    jobs = page.locator("table.jobs tbody tr")
    jobs.filter(has_text="DONE").wait_for(timeout=15_000)  # polled, no reload
    (row,) = jobs.all_inner_texts()
    assert row.startswith("Import from logs") and row.split("\t")[3] == "2", row
    page.get_by_role("link", name="Show the entries as they are now").click()
    inputs = sorted(r.split("\t")[1] for r in entry_rows(page))
    assert inputs == ["imported question 0", "imported question 1"]

    page.locator("summary", has_text="Relabel outputs").click()
    page.get_by_label("Model", exact=True).last.fill("openai:gpt-4o")
    page.get_by_role("button", name="Relabel").click()
    page.wait_for_url(re.compile(r".*#jobs$"))
    relabel = page.locator("table.jobs tbody tr").filter(has_text="Relabel with openai:gpt-4o")
    relabel.filter(has_text="DONE").wait_for(timeout=15_000)
    with gateway.http(key) as h:
        entries = h.get(f"/datasets/{dataset_id}/entries").json()["data"]
    assert len(entries) == 2
    for e in entries:  # the fake provider echoes the question: a new output from the chosen model
        question = e["messages"][0]["content"]
        assert e["provenance"] == "RELABELED_BY_MODEL" and e["original_output"] is not None
        assert e["output"] == {"role": "assistant", "content": f"echo: {question}"}
    page.get_by_role("link", name="Show the entries as they are now").click()
    assert [r.split("\t")[3] for r in entry_rows(page)] == ["RELABELED_BY_MODEL"] * 2
    assert page.errors == []
