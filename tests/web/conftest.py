"""The web UI driven by a real browser: Debian's Chromium under Playwright, against a running
``tunepipe serve`` (the ``gateway`` fixture), with calls logged through the gateway first.

One browser per module; each test opens its own context (its own cookies). CI installs
``chromium`` (``.ci/run``); where it cannot be found at all, the browser tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import KEY_RE, Gateway

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
XSS_IMG = '<img src=x onerror="window.__pwned=1">'
XSS_SCRIPT = "<script>window.__pwned=2</script>"
XSS_TAG = "<img src=x onerror=window.__pwned=3>"


SCREENSHOTS = os.environ.get("TUNEPIPE_UI_SCREENSHOTS")  # a folder: save the pages' screenshots there


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) at 1280 px, downloads allowed."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    p = context.new_page()
    p.set_default_timeout(5000)
    # Any script the page runs that a stored text smuggled in, or a CSP violation, shows here.
    p.errors = []  # type: ignore[attr-defined]
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    return p


def sign_in(page: Any, gateway: Gateway, key: str, next_path: str = "") -> None:
    """Sign in through the form; land on ``next_path`` (Request Logs by default)."""
    page.goto(f"{gateway.root}/sign-in" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(f".*{re.escape(next_path)}$" if next_path else r".*/logs.*"))


def chromium_path() -> str | None:
    for candidate in (os.environ.get("TUNEPIPE_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found (/usr/bin/chromium): `apt-get install -y chromium` (CI installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=path,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield b
        finally:
            b.close()


@dataclass
class UiProject:
    """A project of its own, with calls logged through the gateway."""

    name: str
    key: str
    read_only_key: str
    run: str  # the `run` metadata value every seeded call carries
    ids: dict[str, str] = field(default_factory=dict)  # what each seeded call is, by its log id


def _project(gateway: Gateway, prefix: str) -> tuple[str, str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    keys = KEY_RE.findall(gateway.cli("projects", "create", name).stdout)
    assert len(keys) == 2, keys
    return name, keys[0], keys[1]


def _chat(gateway: Gateway, key: str, model: str, text: str, metadata: dict[str, str], **headers: str) -> str:
    with gateway.http(key) as h:
        r = h.post(
            "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": text}], "metadata": metadata},
            headers=headers,
        )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _log_ids(gateway: Gateway, key: str, run: str) -> dict[str, str]:
    """The project's logged calls of ``run``: completion id → log id."""
    with gateway.http(key) as h:
        r = h.get("/logs", params={"metadata.run": run, "limit": 100})
    assert r.status_code == 200, r.text
    return {c["completionId"]: c["id"] for c in r.json()["data"]}


@pytest.fixture(scope="module")
def two_projects(gateway: Gateway) -> list[tuple[str, str, str]]:
    """Two fresh projects, made at once (each `tunepipe projects create` takes seconds)."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda prefix: _project(gateway, prefix), ("ui", "ui-other")))


@pytest.fixture(scope="module")
def ui_project(gateway: Gateway, two_projects: list[tuple[str, str, str]]) -> UiProject:
    name, key, ro = two_projects[0]
    project = UiProject(name=name, key=key, read_only_key=ro, run=uuid.uuid4().hex[:10])
    made: dict[str, str] = {}
    for i in range(3):
        made[
            _chat(gateway, key, "openai:gpt-4o-mini", f"mini question {i}", {"run": project.run, "flow": "a"})
        ] = f"mini{i}"
    for i in range(2):
        made[_chat(gateway, key, "openai:gpt-4o", f"big question {i}", {"run": project.run, "flow": "b"})] = (
            f"big{i}"
        )
    made[
        _chat(
            gateway,
            key,
            "openai:gpt-4o-mini",
            f"{XSS_IMG} and {XSS_SCRIPT}",
            {"run": project.run, "flow": "x", "note": XSS_TAG},
        )
    ] = "xss"
    # A call that fell back: the first model fails, the second answers.
    fallback = json.dumps(["openai:gpt-4o-mini"])
    made[
        _chat(
            gateway,
            key,
            "openai:fail-503",
            "fall back please",
            {"run": project.run, "flow": "fallback"},
            **{"op-fallback": fallback},
        )
    ] = "fallback"
    # A call made elsewhere and reported, whose answer is a tool call.
    with gateway.http(key) as h:
        r = h.post(
            "/report",
            json={
                "reqPayload": {
                    "model": "openai:gpt-4o-mini",
                    "messages": [{"role": "user", "content": "What is the weather in Oslo?"}],
                    "metadata": {"run": project.run, "flow": "tool"},
                },
                "respPayload": {
                    "id": "chatcmpl-tool-report",
                    "object": "chat.completion",
                    "model": "gpt-4o-mini",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "tool_calls",
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {
                                        "id": "call_1",
                                        "type": "function",
                                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                                    }
                                ],
                            },
                        }
                    ],
                },
                "statusCode": 200,
            },
        )
        assert r.status_code == 200, r.text
    made["chatcmpl-tool-report"] = "tool"
    ids = _log_ids(gateway, key, project.run)
    project.ids = {made[c]: i for c, i in ids.items() if c in made}
    assert len(project.ids) == len(made), (ids, made)
    return project


@pytest.fixture(scope="module")
def other_project(gateway: Gateway, two_projects: list[tuple[str, str, str]]) -> UiProject:
    name, key, ro = two_projects[1]
    project = UiProject(name=name, key=key, read_only_key=ro, run=uuid.uuid4().hex[:10])
    _chat(gateway, key, "openai:gpt-4o-mini", f"secret of {name}", {"run": project.run})
    return project


def session_cookie(context: Any) -> dict[str, Any]:
    (cookie,) = [c for c in context.cookies() if c["name"] == "tunepipe_session"]
    return dict(cookie)


def post_with_cookie(gateway: Gateway, path: str, cookie: str, data: dict[str, str]) -> httpx.Response:
    """A POST the browser did not make: the session cookie and whatever form fields are given."""
    with httpx.Client(base_url=gateway.root, cookies={"tunepipe_session": cookie}, timeout=10) as c:
        return c.post(path, data=data)
