"""``GET /metrics``: Prometheus text that moves with real calls, without tenant data in it, and
closed by a bearer token when one is set."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import FakeProvider, Gateway, _start, base_env, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CHAT_ROUTE = "/api/v1/chat/completions"


def scrape(root: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{root}/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def chat(gateway: Gateway, model: str, text: str, **headers: str) -> httpx.Response:
    with gateway.http() as h:
        return h.post(
            "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": text}]},
            headers=headers,
        )


def test_metrics_move_with_proxied_cached_and_failed_calls(gateway: Gateway) -> None:
    before = samples(scrape(gateway.root))
    text = uuid.uuid4().hex
    with gateway.client() as client:
        proxied = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"proxied {text}"}]
        )
        cached = [
            client.chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"cached {text}"}],
                extra_headers={"op-cache": "readWrite"},
            )
            for _ in range(2)
        ]
    assert [r.headers["op-cache-status"] for r in cached] == ["MISS", "HIT"]
    failed = chat(gateway, "fail-503", f"failed {text}", **{"op-retries": "0"})
    assert failed.status_code == 502, failed.text
    gateway.latest()  # flushes the log writer
    after = samples(scrape(gateway.root))

    assert (
        moved(before, after, "tunepipe_http_requests_total", route=CHAT_ROUTE, method="POST", status="2xx")
        == 3
    )
    assert (
        moved(before, after, "tunepipe_http_requests_total", route=CHAT_ROUTE, method="POST", status="5xx")
        == 1
    )
    assert (
        moved(before, after, "tunepipe_http_request_duration_seconds_count", route=CHAT_ROUTE, method="POST")
        == 4
    )
    assert (
        moved(before, after, "tunepipe_gateway_calls_total", endpoint="chat_completions", status="2xx") == 3
    )
    assert (
        moved(before, after, "tunepipe_gateway_calls_total", endpoint="chat_completions", status="5xx") == 1
    )
    assert (
        moved(before, after, "tunepipe_gateway_call_duration_seconds_count", endpoint="chat_completions") == 4
    )
    assert moved(before, after, "tunepipe_cache_lookups_total", result="miss") == 1
    assert moved(before, after, "tunepipe_cache_lookups_total", result="hit") == 1
    assert moved(before, after, "tunepipe_upstream_errors_total", provider="openai", status="503") == 1

    # Tokens the upstream processed: the proxied call and the cache miss, not the hit.
    usage = proxied.usage
    assert usage is not None
    miss = cached[0].parse().usage
    assert miss is not None
    assert moved(before, after, "tunepipe_gateway_tokens_total", model="gpt-4o", type="input") == (
        usage.prompt_tokens + miss.prompt_tokens
    )
    assert moved(before, after, "tunepipe_gateway_tokens_total", model="gpt-4o", type="output") == (
        usage.completion_tokens + miss.completion_tokens
    )
    assert moved(before, after, "tunepipe_gateway_cost_usd_total", model="gpt-4o") > 0

    # State read at scrape time: the log writer's queue and counters.
    assert value(after, "tunepipe_log_queue_depth") == 0
    assert moved(before, after, "tunepipe_log_records_written_total") >= 4
    assert ("tunepipe_log_records_dropped_total", frozenset()) in after


def test_metrics_count_unmatched_paths_under_one_label(gateway: Gateway) -> None:
    before = samples(scrape(gateway.root))
    for n in range(3):
        assert httpx.get(f"{gateway.root}/no-such-page-{uuid.uuid4().hex}-{n}").status_code == 404
    text = scrape(gateway.root)
    after = samples(text)
    assert (
        moved(before, after, "tunepipe_http_requests_total", route="unmatched", method="GET", status="4xx")
        == 3
    )
    assert "no-such-page" not in text


def test_metrics_count_finished_jobs(gateway: Gateway) -> None:
    before = samples(scrape(gateway.root))
    with gateway.http() as h:
        dataset = h.post("/datasets", json={"name": f"metrics-{uuid.uuid4().hex[:8]}"}).json()["id"]
        r = h.post(f"/datasets/{dataset}/import-logs", json={"filters": {"model": "no-such-model"}})
        assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    while True:
        after = samples(scrape(gateway.root))
        finished = sum(
            moved(before, after, "tunepipe_jobs_finished_total", kind="import_logs", outcome=outcome)
            for outcome in ("done", "error")
        )
        if finished == 1:
            break
        assert time.monotonic() < deadline, "the import job's end was never counted"
        time.sleep(0.1)
    assert value(after, "tunepipe_worker_jobs_running", kind="import_logs") == 0


def test_metrics_carry_no_tenant_data(gateway: Gateway, fake_provider: FakeProvider) -> None:
    chat(gateway, "gpt-4o", uuid.uuid4().hex)
    text = scrape(gateway.root)
    projects = gateway.cli("projects", "list", wide=True).stdout
    project_ids = set(UUID.findall(projects))
    assert project_ids
    for project_id in project_ids:
        assert project_id not in text
    assert gateway.key not in text and gateway.key[:12] not in text
    assert gateway.read_only_key[:12] not in text
    assert fake_provider.url not in text and "127.0.0.1" not in text


@pytest.fixture(scope="module")
def guarded(
    fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, str]]:
    """A server whose metrics need a token: (root, token, a project API key)."""
    home: Path = tmp_path_factory.mktemp("metrics-token")
    env = base_env(home, fake_provider, None)
    token = uuid.uuid4().hex
    key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env.update(TUNEPIPE_METRICS_TOKEN=token, TUNEPIPE_API_KEY=key)
    port = free_port()
    proc = _start(env, port)
    try:
        yield f"http://127.0.0.1:{port}", token, key
    finally:
        proc.terminate()
        proc.wait(30)


def test_metrics_token_required_when_set(guarded: tuple[str, str, str]) -> None:
    root, token, key = guarded
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {key}"},
        {"Authorization": token},
    ):
        r = httpx.get(f"{root}/metrics", headers=headers)
        assert r.status_code == 401, headers
        body = r.json()
        assert body["error"]["type"] == "authentication_error"
        assert "metrics token" in body["error"]["message"]
        assert token not in r.text
    assert "tunepipe_http_requests_total" in scrape(root, token)
    # The token opens the metrics only, not the API.
    assert httpx.get(f"{root}/api/v1/logs", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_metrics_add_up_across_worker_processes(
    fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With ``PROMETHEUS_MULTIPROC_DIR``, whichever process answers the scrape counts them all."""
    home = tmp_path_factory.mktemp("metrics-multiproc")
    (home / "prometheus").mkdir()
    env = base_env(home, fake_provider, None)
    env.update(PROMETHEUS_MULTIPROC_DIR=str(home / "prometheus"), TUNEPIPE_API_KEY=f"opk_{'w' * 42}")
    port = free_port()
    proc = _start(env, port, "--workers", "2")
    root = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client() as client:  # new connections, so both processes get some
            for _ in range(20):
                assert client.get(f"{root}/health", headers={"Connection": "close"}).status_code == 200
        counts = {
            value(
                samples(scrape(root)),
                "tunepipe_http_requests_total",
                route="/health",
                method="GET",
                status="2xx",
            )
            for _ in range(6)
        }
        # _start polled /health until the server was up: those count too.
        assert len(counts) == 1 and counts.pop() >= 20
        assert list((home / "prometheus").glob("counter_*.db"))  # the values live in files
    finally:
        proc.terminate()
        proc.wait(30)
