"""Request Logs in the web UI at 100,000 logged calls: how long the server takes to render a page.

Seeds one project with ``--rows`` calls (bulk insert through the log writer's
:func:`~tunepipe.db.log_rows.write_records`, about 600 bytes of bodies each, five models, a
``prompt_id`` label out of 50, 1 % errors, spread over 30 days), on SQLite and on a Postgres
database of its own (created and dropped here; analysed after the load, as autovacuum would),
then starts ``tunepipe serve`` on it, signs in
through the sign-in form and times ``--requests`` sequential requests of each page over HTTP
(p50 and p95, milliseconds):

* the first page (50 rows), and the 20th page reached by cursor (keyset, never OFFSET);
* pages filtered by model, by a metadata label, by status, and by text in the bodies (a common
  text: the page fills from the first bodies read);
* the Usage page (aggregates by time bucket and model in SQL) over the last 24 hours, 7 days and
  30 days (the calls end now, so the 30-day window holds all of them);
* the baseline, measured in the same run: the API's ``GET /api/v1/logs`` first page (JSON, same
  query), so the ratio is what rendering HTML adds;
* in a real browser (Debian's Chromium under Playwright, signed in once through the form):
  ``--loads`` loads each of ``/logs`` and one call's ``/logs/<id>``, from navigation start to the
  ``load`` event (the Navigation Timing entry's ``loadEventEnd``; its ``domContentLoadedEventEnd``
  too), so the page's static files, scripts and first render are counted, not only the server.

Usage: ``.venv/bin/python bench/ui_logs.py [--rows 100000] [--requests 50] [--loads 20]
[--backend sqlite|postgres|both]``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

PG_ADMIN = os.environ.get("TUNEPIPE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
MODELS = (
    "openai:gpt-4o-mini",
    "openai:gpt-4o",
    "anthropic:claude-3-5-haiku",
    "openpipe:support-v2",
    "gpt-4.1",
)
SPAN_MS = 30 * 24 * 3600 * 1000
T0 = int(time.time() * 1000) - SPAN_MS  # the calls end now: the Usage page's windows hold them
BATCH = 5_000


def seed(url: str, rows: int) -> str:
    """Migrate the database, create a project and its key, insert ``rows`` calls; the key."""
    from sqlalchemy import text as sql

    from tunepipe.db.engine import make_engine
    from tunepipe.db.log_rows import write_records
    from tunepipe.db.migrate import upgrade
    from tunepipe.db.projects import create_api_key, create_project
    from tunepipe.domain.ids import uuid7
    from tunepipe.domain.logs import LogRecord

    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        project = create_project(conn, "bench-ui")
        _, key = create_api_key(conn, project.id, name="bench")
    started = time.perf_counter()
    for start in range(0, rows, BATCH):
        batch = []
        for i in range(start, min(rows, start + BATCH)):
            model = MODELS[i % len(MODELS)]
            text = f"Where is my order #{i}? It has been {i % 17} days and the tracking page says nothing."
            status = 500 if i % 100 == 99 else 200
            batch.append(
                LogRecord(
                    id=uuid7(),
                    project_id=project.id,
                    requested_at=T0 + i * SPAN_MS // rows,
                    received_at=T0 + i * SPAN_MS // rows + 300 + i % 700,
                    model=model,
                    status_code=status,
                    source="proxy",
                    request={
                        "model": model,
                        "messages": [
                            {"role": "system", "content": "You are a support assistant for an online shop."},
                            {"role": "user", "content": text},
                        ],
                    },
                    response={
                        "id": f"chatcmpl-{i}",
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": f"Order #{i} ships tomorrow."},
                            }
                        ],
                    }
                    if status == 200
                    else None,
                    error_message="upstream failed" if status != 200 else None,
                    input_tokens=40 + i % 30,
                    output_tokens=8 + i % 5,
                    cost=0.00001 * (1 + i % 7),
                    finish_reason="stop" if status == 200 else None,
                    completion_id=f"chatcmpl-{i}",
                    metadata={"prompt_id": f"p{i % 50}", "env": "prod" if i % 4 else "staging"},
                )
            )
        with engine.begin() as conn:
            write_records(conn, batch)
    if engine.dialect.name == "postgresql":
        # What autovacuum does shortly after a bulk load: without statistics the planner takes
        # the project's 100,000 calls for a few dozen and sorts them all for every page.
        with engine.begin() as conn:
            conn.execute(sql("ANALYZE"))
    print(f"  seeded {rows:,} calls in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    return key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(home: Path, url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEPIPE_")}
    env.update(TUNEPIPE_HOME=str(home), TUNEPIPE_DEFAULT_MODEL="false", TUNEPIPE_WORKER="false")
    if url:
        env["TUNEPIPE_DATABASE_URL"] = url
    port = free_port()
    out = (home / "serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunepipe", "serve", "--port", str(port)], env=env, stdout=out, stderr=out
    )
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                return proc, root
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError((home / "serve.log").read_text()[-3000:])


def timings(client: httpx.Client, path: str, n: int, **kw: Any) -> tuple[float, float]:
    client.get(path, **kw)  # warm: the key's cache, the template, the database's pages
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path, **kw)
        samples.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
NAVIGATION = """() => { const e = performance.getEntriesByType("navigation")[0];
  return [e.loadEventEnd - e.startTime, e.domContentLoadedEventEnd - e.startTime]; }"""


def browser_timings(root: str, key: str, paths: dict[str, str], n: int) -> dict[str, tuple[float, float]]:
    """Each page loaded ``n`` times in Chromium (after one warm load): navigation start to the
    ``load`` event and to DOMContentLoaded, p50 and p95 in ms."""
    from playwright.sync_api import sync_playwright

    path = next((c for c in (os.environ.get("TUNEPIPE_CHROMIUM"), *CHROMIUM) if c and Path(c).exists()), None)
    if path is None:
        print("  (no Chromium found: browser loads not measured)")
        return {}
    out: dict[str, tuple[float, float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{root}/sign-in")
            page.fill("input[name=api_key]", key)
            page.click("button[type=submit]")
            page.wait_for_url("**/logs")
            for name, target in paths.items():
                page.goto(f"{root}{target}")  # warm: the static files are cached from here on
                load, ready = [], []
                for _ in range(n):
                    page.goto(f"{root}{target}", wait_until="load")
                    page.wait_for_function("performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
                    to_load, to_ready = page.evaluate(NAVIGATION)
                    load.append(to_load)
                    ready.append(to_ready)
                out[f"browser {name}, to load"] = percentiles(load)
                out[f"browser {name}, to DOMContentLoaded"] = percentiles(ready)
            assert errors == [], errors
        finally:
            browser.close()
    return out


def measure(root: str, key: str, n: int, loads: int = 0) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    with httpx.Client(base_url=root, timeout=60) as c:
        signed = c.post("/sign-in", data={"api_key": key, "next": "/logs"})
        assert signed.status_code == 303 and "tunepipe_session" in c.cookies, signed.text[:300]
        first = c.get("/logs")
        assert first.text.count("<tr>") == 51, "the first page should list 50 calls"
        cursor_path = "/logs"
        for _ in range(19):
            m = re.search(r'href="(/logs\?[^"]*cursor=[^"]*)"', c.get(cursor_path).text)
            assert m is not None
            cursor_path = m.group(1).replace("&amp;", "&")
        out["UI first page"] = timings(c, "/logs", n)
        out["UI page 20 (cursor)"] = timings(c, cursor_path, n)
        out["UI model filter"] = timings(c, "/logs?model=openai%3Agpt-4o", n)
        out["UI metadata filter"] = timings(c, "/logs?meta_key=prompt_id&meta_value=p7", n)
        out["UI status=500"] = timings(c, "/logs?status=500", n)
        out["UI text search"] = timings(c, "/logs?contains=ships+tomorrow", n)
        out["UI usage, 24 h hourly"] = timings(c, "/usage?range=24h", n)
        out["UI usage, 7 d daily"] = timings(c, "/usage?range=7d", n)
        out["UI usage, 30 d daily"] = timings(c, "/usage?range=30d", n)
        out["API first page (baseline)"] = timings(
            c, "/api/v1/logs", n, headers={"Authorization": f"Bearer {key}"}
        )
        detail = re.search(r'href="(/logs/[0-9a-f-]{36})"', first.text)
        assert detail is not None, "the first page should link each call's detail page"
    if loads:
        out.update(browser_timings(root, key, {"/logs": "/logs", "/logs/<id>": detail.group(1)}, loads))
    return out


def run(backend: str, rows: int, n: int, loads: int) -> dict[str, tuple[float, float]]:
    print(f"{backend}:")
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        home = Path(tmp)
        dbname = f"tp_bench_ui_{uuid.uuid4().hex[:8]}"
        if backend == "sqlite":
            url = None
            seed_url = f"sqlite:///{home / 'tunepipe.db'}"
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
            url = seed_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{dbname}"
        try:
            key = seed(seed_url, rows)
            proc, root = serve(home, url)
            try:
                results = measure(root, key, n, loads)
            finally:
                proc.terminate()
                proc.wait(30)
        finally:
            if backend == "postgres":
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    base = results["API first page (baseline)"][0]
    for name, (p50, p95) in results.items():
        ratio = "" if name.startswith("browser") else f"   {p50 / base:4.2f}x baseline"
        print(f"  {name:40s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms{ratio}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--loads", type=int, default=20, help="browser loads of each page (0: none)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        run(backend, args.rows, args.requests, args.loads)


if __name__ == "__main__":
    main()
