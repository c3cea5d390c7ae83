"""The Settings page in Chromium: API keys (created and shown once, working against the API,
revoked), provider keys (never shown back, used upstream), external providers and models (the
network policy's refusal shown), mixture-of-agents configurations, the project switcher, and a
read-only key (no controls; its posts refused)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import FakeProvider, Gateway
from web.conftest import SCREENSHOTS, _chat, post_with_cookie, session_cookie, sign_in

pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)


def api_status(gateway: Gateway, key: str) -> int:
    with gateway.http(key) as h:
        return h.get("/logs", params={"limit": 1}).status_code


def test_settings_key_created_is_shown_once_works_and_revoked_is_401(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, _ = two_projects[0]
    sign_in(page, gateway, key, "/settings")
    name = f"ui-made-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create key").click()
    made = page.get_by_label("Your new API key").input_value()
    assert made.startswith("opk_") and api_status(gateway, made) == 200

    page.goto(f"{gateway.root}/settings")
    assert made not in page.content()  # shown once
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / "settings-1280.png"), full_page=True)
    row = page.locator("table.keys tbody tr", has_text=name)
    assert row.count() == 1 and "read/write" in row.inner_text()
    # Rate limits: set, shown, then removed again.
    row.get_by_label("Requests a minute").fill("120")
    row.get_by_role("button", name=re.compile("Save the rate limits")).click()
    assert "rate limits were saved" in page.locator(".notice").inner_text()
    with gateway.http(key) as h:
        listed = {k["name"]: k for k in h.get("/keys").json()["data"]}
    assert listed[name]["limits"]["rpm"] == 120

    # Signed in with the new key too (it becomes the active one), then revoked from the page: the
    # browser carries on with the key it held before.
    page.get_by_role("link", name="Add project").click()
    page.get_by_label("API key", exact=True).fill(made)
    page.get_by_role("button", name="Add project").click()
    page.wait_for_url(re.compile(r".*/logs$"))
    page.goto(f"{gateway.root}/settings")
    row = page.locator("table.keys tbody tr", has_text=name)
    assert "this key" in row.inner_text()
    row.get_by_role("button", name=re.compile("Revoke")).click()
    assert "revoked" in page.locator(".notice").inner_text()
    own = page.locator("table.keys tbody tr", has_text="this key")
    assert own.count() == 1 and name not in own.inner_text()
    assert api_status(gateway, made) == 401
    assert page.locator("table.keys tbody tr", has_text=name).count() == 0
    page.set_viewport_size({"width": 390, "height": 800})  # phone width: tables scroll, the page does not
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    assert page.errors == []


def test_settings_provider_key_is_never_shown_and_is_used_upstream(
    gateway: Gateway, fake_provider: FakeProvider, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, _ = two_projects[0]
    secret = f"sk-ui-{uuid.uuid4().hex}"
    sign_in(page, gateway, key, "/settings")
    page.get_by_label("Provider", exact=True).select_option("openai")
    page.locator("#pk-key").fill(secret)
    page.get_by_role("button", name="Set provider key").click()
    page.wait_for_url(re.compile(r".*saved=provider-key.*"))
    html = page.content()
    assert secret not in html and secret[:-4] not in html and secret[4:] not in html
    row = page.locator("table.provider-keys tbody tr", has_text="openai")
    assert f"set (…{secret[-4:]})" in row.inner_text()

    with gateway.http(key) as h:
        r = h.post(
            "/chat/completions",
            json={"model": "openai:gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert r.status_code == 200, r.text
    auth = next(v for k, v in fake_provider.last()["headers"].items() if k.lower() == "authorization")
    assert auth == f"Bearer {secret}"

    row.get_by_role("button", name="Remove the openai key").click()
    assert "removed" in page.locator(".notice").inner_text()
    assert page.locator("table.provider-keys tbody tr", has_text="openai").count() == 0


def test_settings_external_provider_and_model_added_and_a_refused_url_shows_why(
    gateway: Gateway, fake_provider: FakeProvider, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, _ = two_projects[0]
    slug = f"ext-{uuid.uuid4().hex[:6]}"
    sign_in(page, gateway, key, "/settings")
    page.get_by_label("Provider slug").fill(slug)
    page.get_by_label("Base URL", exact=True).fill(f"{fake_provider.url}/v1")
    page.get_by_role("button", name="Add provider").click()
    article = page.locator("article.external", has_text=slug)
    article.get_by_label("Model slug").fill("m")
    article.get_by_label("Input $/M").fill("2")
    article.get_by_role("button", name="Add model").click()
    assert f"openpipe:{slug}/m" in page.locator("article.external", has_text=slug).inner_text()
    with gateway.http(key) as h:
        r = h.post(
            "/chat/completions",
            json={"model": f"openpipe:{slug}/m", "messages": [{"role": "user", "content": "x"}]},
        )
    assert r.status_code == 200, r.text
    assert fake_provider.last()["body"]["model"] == "m"

    # Link-local (cloud metadata) is outside the tests' allow-list: the policy's 400 is shown.
    page.get_by_label("Provider slug").fill(f"{slug}-meta")
    page.get_by_label("Base URL", exact=True).fill("http://169.254.169.254/v1")
    with page.expect_response(lambda r: r.url.endswith("/settings/external-providers")) as answer:
        page.get_by_role("button", name="Add provider").click()
    assert answer.value.status == 400
    with gateway.http(key) as h:
        r = h.post(
            "/external-providers", json={"slug": f"{slug}-api", "baseUrl": "http://169.254.169.254/v1"}
        )
    assert r.status_code == 400
    assert page.get_by_role("alert").inner_text() == r.json()["error"]["message"]
    assert page.locator("article.external", has_text=f"{slug}-meta").count() == 0


def test_settings_moa_configuration_created_and_edited(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, _ = two_projects[0]
    slug = f"mix{uuid.uuid4().hex[:6]}"
    sign_in(page, gateway, key, "/settings")
    page.get_by_label("Slug", exact=True).fill(slug)
    page.locator("#n-proposers").fill("openai:gpt-4o-mini, openai:gpt-4o")
    page.locator("#n-candidates").fill("2")
    page.get_by_role("button", name="Create configuration").click()
    article = page.locator("article.moa", has_text=slug)
    assert f"openpipe:moa-{slug}" in article.inner_text()
    article.get_by_label("Layers").fill("2")
    article.get_by_role("button", name="Save").click()
    with gateway.http(key) as h:
        got = h.get(f"/moa-configs/{slug}").json()
    assert got["proposers"] == ["openai:gpt-4o-mini", "openai:gpt-4o"]
    assert got["candidates"] == 2 and got["layers"] == 2


def test_project_switcher_shows_each_projects_own_logs(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    (a_name, a_key, _), (b_name, b_key, _) = two_projects
    run = uuid.uuid4().hex[:8]
    _chat(gateway, a_key, "openai:gpt-4o-mini", f"only in {a_name}", {"run": run})
    _chat(gateway, b_key, "openai:gpt-4o-mini", f"only in {b_name}", {"run": run})
    sign_in(page, gateway, a_key, "/logs")
    page.get_by_role("link", name="Add project").click()
    page.get_by_label("API key", exact=True).fill(b_key)
    page.get_by_role("button", name="Add project").click()
    page.wait_for_url(re.compile(r".*/logs$"))
    assert page.locator(".who .project").inner_text() == b_name
    cookie = session_cookie(page.context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert a_key not in cookie["value"] and b_key not in cookie["value"]

    with gateway.http(a_key) as h:
        a_log = h.get("/logs", params={"metadata.run": run}).json()["data"][0]["id"]
    with gateway.http(b_key) as h:
        b_log = h.get("/logs", params={"metadata.run": run}).json()["data"][0]["id"]
    page.goto(f"{gateway.root}/logs?meta_key=run&meta_value={run}")
    assert page.locator(f"a[href='/logs/{b_log}']").count() == 1
    assert page.locator(f"a[href='/logs/{a_log}']").count() == 0

    page.get_by_label("Switch to project").select_option(label=a_name)
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(re.compile(r".*/logs$"))
    assert page.locator(".who .project").inner_text() == a_name
    page.goto(f"{gateway.root}/logs?meta_key=run&meta_value={run}")
    assert page.locator(f"a[href='/logs/{a_log}']").count() == 1
    assert page.locator(f"a[href='/logs/{b_log}']").count() == 0
    assert page.goto(f"{gateway.root}/logs/{b_log}").status == 404  # the other project's call
    # The switcher's choice names a fingerprint, never a key.
    assert b_key not in page.content()
    assert all("404" in e for e in page.errors)  # the one 404 above, nothing else


def test_settings_read_only_key_sees_no_controls_and_its_posts_are_refused(
    gateway: Gateway, two_projects: list[tuple[str, str, str]], page: Any
) -> None:
    _, key, ro_key = two_projects[1]
    sign_in(page, gateway, ro_key, "/settings")
    assert page.locator("table.keys tbody tr").count() >= 2  # sees the keys
    assert page.locator("main form").count() == 0 and page.locator("main button").count() == 0
    csrf = page.locator("meta[name='csrf-token']").get_attribute("content")
    cookie = session_cookie(page.context)["value"]
    with gateway.http(key) as h:
        key_id = h.get("/keys").json()["data"][0]["id"]
    for path, data in (
        ("/settings/keys", {"name": "nope"}),
        (f"/settings/keys/{key_id}/revoke", {}),
        ("/settings/provider-keys", {"provider": "openai", "api_key": "sk-nope"}),
        ("/settings/moa", {"slug": "nope", "proposers": "openai:gpt-4o-mini"}),
    ):
        r = post_with_cookie(gateway, path, cookie, {"csrf_token": csrf or "", **data})
        assert r.status_code == 403, (path, r.status_code)
    with gateway.http(key) as h:
        assert [k["name"] for k in h.get("/keys").json()["data"]].count("nope") == 0
        assert h.get("/provider-keys").json()["data"] == []
    assert httpx.get(f"{gateway.root}/settings", follow_redirects=False).status_code == 303
