"""`tunepipe serve` as a process: first start prints a key, shutdown flushes every queued log,
several workers share one database."""

from __future__ import annotations

import concurrent.futures
import signal
import sqlite3
from pathlib import Path

import httpx
import openai
import pytest

from conftest import KEY_RE, FakeProvider, _start, base_env, free_port, server_log


def _count_logs(home: Path) -> int:
    with sqlite3.connect(home / "tunepipe.db") as conn:
        return int(conn.execute("SELECT count(*) FROM logged_calls").fetchone()[0])


def test_serve_first_start_prints_a_working_key(fake_provider: FakeProvider, tmp_path: Path) -> None:
    env = base_env(tmp_path, fake_provider, None)
    port = free_port()
    proc = _start(env, port)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    out = server_log(env, port).read_text()
    match = KEY_RE.search(out)
    assert match, out
    # A second start keeps the key (printed only once) and the key authenticates.
    proc = _start(env, port)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=match.group(0), max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "key works"}]
        )
        assert reply.choices[0].message.content == "echo: key works"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    # The second start wrote to the same log file: still exactly one key in it.
    assert len(KEY_RE.findall(server_log(env, port).read_text())) == 1


def test_serve_shutdown_under_load_loses_no_logs(fake_provider: FakeProvider, tmp_path: Path) -> None:
    env = base_env(tmp_path, fake_provider, None)
    env["TUNEPIPE_API_KEY"] = "opk_" + "s" * 42
    # SIGTERM right after the last answer: whatever is still queued must be written on the way out.
    env["TUNEPIPE_LOG_BATCH_SIZE"] = "5000"
    port = free_port()
    proc = _start(env, port)
    sent = 300
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as http:

            def call(i: int) -> int:
                body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"flush {i}"}]}
                headers = {"Authorization": f"Bearer {env['TUNEPIPE_API_KEY']}"}
                return http.post("/chat/completions", json=body, headers=headers).status_code

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(call, range(sent)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert statuses == [200] * sent
    assert _count_logs(tmp_path) == sent


@pytest.mark.slow
def test_serve_two_workers_share_the_database(fake_provider: FakeProvider, tmp_path: Path) -> None:
    env = base_env(tmp_path, fake_provider, None)
    env["TUNEPIPE_API_KEY"] = "opk_" + "w" * 42
    port = free_port()
    proc = _start(env, port, "--workers", "2")
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=env["TUNEPIPE_API_KEY"], max_retries=0
        )
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(
                    lambda i: client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": f"w{i}"}]
                    ),
                    range(40),
                )
            )
        assert sorted(r.choices[0].message.content for r in replies) == sorted(
            f"echo: w{i}" for i in range(40)
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert _count_logs(tmp_path) == 40
