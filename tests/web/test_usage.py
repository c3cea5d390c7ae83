"""The Usage page in Chromium: requests, tokens, cost, cache hits and errors of calls made through
the gateway (several models, cache hits, upstream failures), equal to what the API's logs say,
per model and in total, with the chart drawn by uPlot."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Gateway
from tunepipe.web.views import cost as fmt_cost
from web.conftest import _project

pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)
SCREENSHOTS = os.environ.get("TUNEPIPE_UI_SCREENSHOTS")


@pytest.fixture(scope="module")
def seeded(gateway: Gateway) -> tuple[str, list[dict[str, Any]]]:
    """A project with calls of three models: two answered from the cache, two failed upstream."""
    _, key, _ = _project(gateway, "usage")
    with gateway.http(key) as h:

        def chat(model: str, text: str, **headers: str) -> int:
            body = {"model": model, "messages": [{"role": "user", "content": text}]}
            return h.post("/chat/completions", json=body, headers=headers).status_code

        statuses = [chat("openai:gpt-4o-mini", f"mini {i}") for i in range(3)]
        statuses += [chat("openai:gpt-4o-mini", "cached once", **{"op-cache": "readWrite"}) for _ in range(3)]
        statuses += [chat("openai:gpt-4o", f"big {i}") for i in range(2)]
        statuses += [chat("openai:fail-500", f"broken {i}") for i in range(2)]
        assert statuses[:8] == [200] * 8 and all(s >= 500 for s in statuses[8:]), statuses
        r = h.get("/logs", params={"limit": 100})
    assert r.status_code == 200, r.text
    calls = r.json()["data"]
    assert len(calls) == 10
    return key, calls


def expected(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model, what the API's logs add up to."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "in": 0, "out": 0, "cost": 0.0, "cache": 0, "errors": 0}
    )
    for c in calls:
        m = out[c["model"]]
        m["requests"] += 1
        m["in"] += c["inputTokens"] or 0
        m["out"] += c["outputTokens"] or 0
        m["cost"] += c.get("cost") or 0.0
        m["cache"] += bool(c.get("cacheHit"))
        m["errors"] += c["statusCode"] != 200
    return dict(out)


@pytest.fixture
def page(browser: Any, gateway: Gateway, seeded: tuple[str, list[dict[str, Any]]]) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    p = ctx.new_page()
    p.set_default_timeout(5000)
    p.errors = []  # type: ignore[attr-defined]
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.goto(f"{gateway.root}/sign-in?next=/usage")
    p.get_by_label("API key", exact=True).fill(seeded[0])
    p.get_by_role("button", name="Sign in", exact=True).click()
    p.wait_for_url(re.compile(r".*/usage$"))
    try:
        yield p
    finally:
        ctx.close()


def test_usage_page_numbers_equal_the_logs_per_model_and_in_total(
    page: Any, seeded: tuple[str, list[dict[str, Any]]]
) -> None:
    want = expected(seeded[1])
    assert any(m["cache"] for m in want.values()) and any(m["errors"] for m in want.values())
    rows = page.locator("table.usage-models tbody tr")
    shown = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("th, td").all_inner_texts()
        shown[cells[0].strip()] = [c.strip() for c in cells[1:]]
    assert set(shown) == set(want)
    for model, m in want.items():
        assert shown[model][:6] == [
            str(m["requests"]),
            str(m["in"]),
            str(m["out"]),
            fmt_cost(m["cost"]) or "$0",
            str(m["cache"]),
            f"{100 * m['cache'] / m['requests']:.1f}%",
        ], model
        assert shown[model][6] == str(m["errors"])

    total = {k: sum(m[k] for m in want.values()) for k in ("requests", "in", "out", "cache", "errors")}
    assert page.locator("#total-requests").inner_text() == str(total["requests"])
    assert page.locator("#total-tokens").inner_text() == f"{total['in']} / {total['out']}"
    assert (
        page.locator("#total-cache")
        .inner_text()
        .startswith(f"{100 * total['cache'] / total['requests']:.1f}%")
    )
    assert page.locator("#total-errors").inner_text().startswith(str(total["errors"]))
    # Errors by status: the two upstream failures, with the status the logs recorded.
    logged = sorted({str(c["statusCode"]) for c in seeded[1] if c["statusCode"] != 200})
    errors = page.locator("table.usage-errors tbody tr").all_inner_texts()
    assert [re.split(r"\s+", e.strip())[0] for e in errors] == logged
    assert sum(int(re.split(r"\s+", e.strip())[1]) for e in errors) == total["errors"]


def test_usage_chart_is_drawn_and_the_range_switches_to_daily(page: Any) -> None:
    charts = page.locator(".chart[data-drawn='1']")
    charts.first.wait_for()
    assert charts.count() == 3
    assert page.locator(".chart canvas").count() == 3
    legend = page.locator(".chart").first.locator(".u-legend").inner_text()
    assert "openai:gpt-4o-mini" in legend
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / "usage-1280.png"), full_page=True)
    requests_24h = page.locator("#total-requests").inner_text()

    page.get_by_role("link", name="Last 7 days (daily)").click()
    page.wait_for_url(re.compile(r".*range=7d"))
    page.locator(".chart[data-drawn='1']").first.wait_for()
    assert page.locator("#total-requests").inner_text() == requests_24h
    assert page.get_by_role("link", name="Last 7 days (daily)").get_attribute("aria-current") == "true"
    page.set_viewport_size({"width": 390, "height": 800})
    # The charts are drawn again to the narrower width (after a short debounce).
    page.wait_for_function("document.documentElement.scrollWidth <= 400")
    assert page.errors == []  # no CSP violation, no script error


def test_usage_unknown_range_is_a_400_page(gateway: Gateway, page: Any) -> None:
    r = page.request.get(f"{gateway.root}/usage?range=1y")
    assert r.status == 400 and "Unknown time range" in r.text()
    assert httpx.get(f"{gateway.root}/usage", follow_redirects=False).status_code == 303
