"""The web UI in Chromium: sign-in, navigation, Request Logs (filters, keyset pages, detail),
escaping of logged text, CSRF, read-only keys, sign-out, and tenancy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from conftest import Gateway
from web.conftest import (
    SCREENSHOTS,
    XSS_IMG,
    XSS_SCRIPT,
    XSS_TAG,
    UiProject,
    post_with_cookie,
    session_cookie,
    sign_in,
)

# One backend keeps the browser tests short; the queries the pages make are tested on both
# (tests/db/test_log_pages.py) and timed on both (bench/ui_logs.py).
pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)

NAV = ("Request Logs", "Datasets", "Fine-tunes", "Evaluations", "Criteria", "Usage", "Settings")


def rows(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("table.logs tbody tr").all_inner_texts()]


def row_ids(page: Any) -> list[str]:
    """The logged calls a page lists, by id (from each row's link)."""
    hrefs = page.locator("table.logs tbody tr a").evaluate_all("links => links.map(a => a.pathname)")
    return [h.rsplit("/", 1)[1] for h in hrefs]


def test_sign_in_wrong_key_shows_the_form_again_with_an_error(gateway: Gateway, page: Any) -> None:
    page.goto(f"{gateway.root}/logs")
    assert page.url.startswith(f"{gateway.root}/sign-in")
    page.get_by_label("API key", exact=True).fill("opk_not_a_key_of_this_installation")
    with page.expect_response(lambda r: r.url.endswith("/sign-in") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in", exact=True).click()
    assert answer.value.status == 401
    assert page.get_by_role("alert").inner_text() == "That API key is not valid."
    assert page.get_by_label("API key", exact=True).is_visible()
    assert page.get_by_role("link", name="Request Logs").count() == 0


def test_sign_in_by_keyboard_shows_navigation_project_and_session_cookie(
    gateway: Gateway, ui_project: UiProject, page: Any, context: Any
) -> None:
    page.goto(f"{gateway.root}/")
    page.keyboard.press("Tab")  # the skip link
    page.get_by_label("API key", exact=True).focus()
    page.keyboard.type(ui_project.key)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{gateway.root}/logs")
    nav = page.get_by_role("navigation", name="Sections")
    for name in NAV:
        assert nav.get_by_role("link", name=name, exact=True).count() == 1, name
    assert page.locator(".project").inner_text() == ui_project.name
    cookie = session_cookie(context)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert ui_project.key not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # nothing of the session is readable by scripts
    # Every section renders; the ones not built yet say what the API and CLI offer meanwhile.
    for name in NAV[1:]:
        nav.get_by_role("link", name=name, exact=True).click()
        assert page.get_by_role("heading", level=1).inner_text() == name
        assert "API" in page.locator("main").inner_text()
    assert page.errors == []


def test_logs_table_lists_the_calls_made_and_filters_narrow_it(
    gateway: Gateway, ui_project: UiProject, page: Any
) -> None:
    sign_in(page, gateway, ui_project.key)
    headers = page.locator("table.logs thead th").all_inner_texts()
    for column in ("Model", "Status", "Latency", "Cost", "Cache hit", "Tags"):
        assert any(column in h for h in headers), headers
    listed = rows(page)
    assert len(listed) == len(ui_project.ids)
    assert sum("openai:gpt-4o-mini" in r for r in listed) == 5
    assert sum("openai:gpt-4o\t" in r or r.split("\t")[1] == "openai:gpt-4o" for r in listed) == 2

    page.get_by_label("Model", exact=True).fill("openai:gpt-4o")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*model=openai%3Agpt-4o(&|$)"))
    expect(page.locator("table.logs tbody tr")).to_have_count(2)
    assert all("openai:gpt-4o" in r and "mini" not in r for r in rows(page))

    page.goto(f"{gateway.root}/logs")
    page.get_by_label("Metadata key").fill("flow")
    page.get_by_label("Metadata value").fill("a")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.logs tbody tr")).to_have_count(3)
    assert all("flow=a" in r for r in rows(page))

    page.goto(f"{gateway.root}/logs?contains=big+question+1")
    assert len(rows(page)) == 1
    page.goto(f"{gateway.root}/logs?status=500")
    assert rows(page) == [] and "No logged calls match" in page.locator("#results").inner_text()
    bad = page.goto(f"{gateway.root}/logs?status=abc&model=kept")
    assert bad is not None and bad.status == 400
    assert "`status` must be an HTTP status code" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Model", exact=True).input_value() == "kept"
    page.errors.clear()  # the 400 itself is logged by the browser
    assert page.errors == []


def test_logs_pages_by_cursor_older_then_newer(gateway: Gateway, ui_project: UiProject, page: Any) -> None:
    sign_in(page, gateway, ui_project.key)
    page.goto(f"{gateway.root}/logs?limit=3")
    first = row_ids(page)
    assert len(first) == 3
    assert page.get_by_role("link", name="← Newer").count() == 0
    top = page.locator("table.logs tbody tr a").first  # the page's first call, once swapped in

    def turn(name: str, expected_first: str | None = None) -> list[str]:
        before = row_ids(page)[0]
        page.get_by_role("link", name=name).click()
        if expected_first is None:
            expect(top).not_to_have_attribute("href", f"/logs/{before}")
        else:
            expect(top).to_have_attribute("href", f"/logs/{expected_first}")
        return row_ids(page)

    second = turn("Older →")
    assert "cursor=" in page.url and "offset" not in page.url
    assert len(second) == 3 and not set(second) & set(first)
    third = turn("Older →")
    assert len(third) == len(ui_project.ids) - 6 and page.get_by_role("link", name="Older →").count() == 0
    assert sorted(first + second + third) == sorted(ui_project.ids.values())
    assert turn("← Newer", second[0]) == second
    assert "before=" in page.url
    assert turn("← Newer", first[0]) == first
    assert page.get_by_role("link", name="← Newer").count() == 0
    assert page.errors == []


def test_log_detail_shows_messages_response_tool_calls_and_metadata(
    gateway: Gateway, ui_project: UiProject, page: Any
) -> None:
    sign_in(page, gateway, ui_project.key)
    page.goto(f"{gateway.root}/logs?contains=big+question+0")
    page.locator("table.logs tbody tr a").first.click()
    page.wait_for_url(f"{gateway.root}/logs/{ui_project.ids['big0']}")
    main = page.locator("main")
    assert "big question 0" in main.locator(".message.role-user").first.inner_text()
    assert "echo: big question 0" in main.locator(".choice").inner_text()
    assert "flow" in page.get_by_role("region", name="Metadata").inner_text()
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "log-detail-1280.png"), full_page=False)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(Path(SCREENSHOTS) / "log-detail-390.png"), full_page=False)
        page.goto(f"{gateway.root}/logs")
        page.screenshot(path=str(Path(SCREENSHOTS) / "logs-390.png"), full_page=False)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{gateway.root}/logs")
        page.screenshot(path=str(Path(SCREENSHOTS) / "logs-1280.png"), full_page=False)

    page.goto(f"{gateway.root}/logs/{ui_project.ids['tool']}")
    call = page.locator(".tool-call")
    assert "get_weather" in call.inner_text()
    assert '"city": "Oslo"' in call.locator("pre").inner_text()  # arguments pretty-printed
    page.goto(f"{gateway.root}/logs/{ui_project.ids['fallback']}")
    attempts = page.get_by_role("region", name="Attempts").locator("tbody tr").all_inner_texts()
    assert len(attempts) == 2
    assert "openai:fail-503" in attempts[0] and "503" in attempts[0]
    assert "openai:gpt-4o-mini" in attempts[1] and "200" in attempts[1]
    assert "echo: fall back please" in page.get_by_role("region", name="Response").inner_text()
    assert page.errors == []
    missing = page.goto(f"{gateway.root}/logs/not-a-call-of-this-project")
    assert missing is not None and missing.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Error 404"


def test_logged_markup_is_shown_as_text_and_never_runs(
    gateway: Gateway, ui_project: UiProject, page: Any
) -> None:
    sign_in(page, gateway, ui_project.key)
    page.goto(f"{gateway.root}/logs?meta_key=flow&meta_value=x")
    assert XSS_TAG in page.locator("table.logs").inner_text()
    page.locator("table.logs tbody tr a").first.click()
    page.wait_for_url(f"{gateway.root}/logs/{ui_project.ids['xss']}")
    text = page.locator("main").inner_text()
    assert f"{XSS_IMG} and {XSS_SCRIPT}" in text  # the request, literally
    assert f"echo: {XSS_IMG} and {XSS_SCRIPT}" in text  # and the response
    assert XSS_TAG in text
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.errors == []


def test_metadata_edit_needs_the_csrf_token(
    gateway: Gateway, ui_project: UiProject, page: Any, context: Any
) -> None:
    sign_in(page, gateway, ui_project.key)
    call = ui_project.ids["mini0"]
    page.goto(f"{gateway.root}/logs/{call}")
    page.get_by_label("Key", exact=True).fill("reviewed")
    page.get_by_label("Value", exact=True).fill("yes")
    page.get_by_role("button", name="Set metadata").click()
    page.wait_for_url(f"{gateway.root}/logs/{call}?saved=1")
    assert "reviewed" in page.get_by_role("region", name="Metadata").inner_text()
    with gateway.http(ui_project.key) as h:
        assert h.get(f"/logs/{call}").json()["metadata"]["reviewed"] == "yes"

    cookie = session_cookie(context)["value"]
    forged = post_with_cookie(gateway, f"/logs/{call}/metadata", cookie, {"key": "forged", "value": "1"})
    assert forged.status_code == 403
    wrong = post_with_cookie(
        gateway, f"/logs/{call}/metadata", cookie, {"key": "forged", "value": "1", "csrf_token": "guess"}
    )
    assert wrong.status_code == 403
    with gateway.http(ui_project.key) as h:
        assert "forged" not in h.get(f"/logs/{call}").json()["metadata"]


def test_selected_calls_are_added_to_a_new_dataset(
    gateway: Gateway, ui_project: UiProject, page: Any
) -> None:
    sign_in(page, gateway, ui_project.key)
    page.get_by_label("Metadata key").fill("flow")
    page.get_by_label("Metadata value").fill("b")
    page.get_by_role("button", name="Filter").click()  # swapped in by htmx
    boxes = page.get_by_role("checkbox")
    expect(boxes).to_have_count(2)
    for i in range(2):
        boxes.nth(i).check()
    name = f"picked-{ui_project.run}"
    page.get_by_label("New dataset name").fill(name)
    page.get_by_role("button", name="Add selected to dataset").click()
    page.wait_for_url(re.compile(r".*added=2.*"))
    assert page.get_by_role("status").inner_text() == "Added 2 calls to the dataset."
    assert "meta_value=b" in page.url  # back to the same filtered page
    with gateway.http(ui_project.key) as h:
        (made,) = [d for d in h.get("/datasets").json()["data"] if d["name"] == name]
        entries = h.get(f"/datasets/{made['id']}/entries").json()["data"]
    assert made["dataset_entry_count"] == 2
    pairs = sorted((e["messages"][0]["content"], e["messages"][-1]["content"]) for e in entries)
    assert pairs == [(f"big question {i}", f"echo: big question {i}") for i in range(2)]
    # The new dataset is offered next time; the tool call made elsewhere makes an entry too.
    page.goto(f"{gateway.root}/logs?meta_key=flow&meta_value=tool")
    page.get_by_label("Dataset", exact=True).select_option(label=name)
    page.get_by_role("checkbox").check()
    page.get_by_role("button", name="Add selected to dataset").click()
    page.wait_for_url(re.compile(r".*added=1.*"))
    assert page.errors == []


def test_read_only_key_sees_no_write_controls_and_its_posts_are_refused(
    gateway: Gateway, ui_project: UiProject, page: Any, context: Any
) -> None:
    sign_in(page, gateway, ui_project.read_only_key)
    assert "read-only" in page.locator("header").inner_text()
    assert len(rows(page)) == len(ui_project.ids)  # it sees every call
    assert page.get_by_role("checkbox").count() == 0
    assert page.get_by_role("button", name="Add selected to dataset").count() == 0
    call = ui_project.ids["mini1"]
    page.goto(f"{gateway.root}/logs/{call}")
    assert "mini question 1" in page.locator("main").inner_text()
    main = page.locator("main")
    assert main.locator("form[method=post]").count() == 0
    assert main.get_by_role("button").count() == 0
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    cookie = session_cookie(context)["value"]
    forged = post_with_cookie(
        gateway, f"/logs/{call}/metadata", cookie, {"key": "ro", "value": "1", "csrf_token": csrf}
    )
    assert forged.status_code == 403
    added = post_with_cookie(
        gateway,
        "/logs/add-to-dataset",
        cookie,
        {"call_id": call, "new_name": f"ro-{ui_project.run}", "csrf_token": csrf},
    )
    assert added.status_code == 403
    with gateway.http(ui_project.key) as h:
        assert "ro" not in h.get(f"/logs/{call}").json()["metadata"]
        assert all(d["name"] != f"ro-{ui_project.run}" for d in h.get("/datasets").json()["data"])


def test_sign_out_forgets_the_session(
    gateway: Gateway, ui_project: UiProject, page: Any, context: Any
) -> None:
    sign_in(page, gateway, ui_project.key)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{gateway.root}/sign-in")
    assert [c for c in context.cookies() if c["name"] == "tunepipe_session"] == []
    page.goto(f"{gateway.root}/logs")
    assert page.url.startswith(f"{gateway.root}/sign-in")
    assert page.get_by_label("API key", exact=True).is_visible()


def test_a_project_never_sees_another_projects_logs(
    gateway: Gateway, ui_project: UiProject, other_project: UiProject, page: Any
) -> None:
    sign_in(page, gateway, ui_project.key)
    assert other_project.run not in page.locator("main").inner_text()
    page.goto(f"{gateway.root}/logs?meta_key=run&meta_value={other_project.run}")
    assert rows(page) == []
    with gateway.http(other_project.key) as h:
        theirs = h.get("/logs", params={"metadata.run": other_project.run}).json()["data"][0]["id"]
    page.goto(f"{gateway.root}/logs/{theirs}")
    assert page.get_by_role("heading", level=1).inner_text() == "Error 404"
    assert other_project.name not in page.locator("main").inner_text()


def test_ui_pages_send_a_content_security_policy_and_api_routes_still_answer(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.root, timeout=10) as c:
        signin = c.get("/sign-in")
        assert signin.status_code == 200
        csp = signin.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert c.get("/logs").status_code == 303
        assert c.get("/static/htmx.min.js").status_code == 200
        assert c.get("/health").json()["status"] == "ok"
        assert c.get("/docs").status_code == 200
        assert c.get("/api/v1/logs", headers={"Authorization": f"Bearer {gateway.key}"}).status_code == 200
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {gateway.key}"}).status_code == 200


def test_sign_in_goes_back_only_to_paths_of_this_site(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.root, timeout=10) as c:
        for target, expected in (
            ("/logs?model=x", "/logs?model=x"),
            ("//evil.example/logs", "/logs"),
            ("https://evil.example/", "/logs"),
            ("/\\evil.example", "/logs"),
        ):
            r = c.post("/sign-in", data={"api_key": gateway.read_only_key, "next": target})
            assert r.status_code == 303 and r.headers["location"] == expected, (target, r.headers)
        cross = c.post(
            "/sign-in",
            data={"api_key": gateway.read_only_key},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert cross.status_code == 403 and "set-cookie" not in cross.headers
