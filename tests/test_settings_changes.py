"""Settings changed through one server reach another server sharing the database long before
their cached copies expire: through the database's change feed, or over Redis pub/sub when
``TUNEPIPE_REDIS_URL`` is set (the feed poll then set to a minute, so only Redis can explain it).

Both servers keep API keys and provider settings for 60 s here; the second one has already
routed (and so cached) the project's providers before the first one changes them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from conftest import FakeProvider, _start, base_env, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["database", "redis"])
def servers(
    request: pytest.FixtureRequest, fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    home = tmp_path_factory.mktemp(f"feed-{request.param}")
    env = base_env(home, fake_provider, None)
    env["TUNEPIPE_API_KEY"] = key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env["TUNEPIPE_AUTH_CACHE_TTL_S"] = "60"
    env["TUNEPIPE_WORKER"] = "false"
    if request.param == "redis":
        redis.Redis.from_url(REDIS_URL).ping()  # the service must be there: fail, don't skip
        env["TUNEPIPE_REDIS_URL"] = REDIS_URL
        env["TUNEPIPE_CHANGE_POLL_S"] = "60"
    ports = [free_port(), free_port()]
    procs = [_start(env, port) for port in ports]
    clients = [
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        for port in ports
    ]
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            client.close()
        for proc in procs:
            proc.terminate()
            proc.wait(30)


def call(h: httpx.Client, model: str) -> int:
    return h.post(
        "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}]}
    ).status_code


def test_a_provider_added_on_one_server_is_routed_by_the_other_at_once(
    servers: tuple[httpx.Client, httpx.Client], fake_provider: FakeProvider
) -> None:
    first, second = servers
    slug = f"feed-{uuid.uuid4().hex[:8]}"
    model = f"openpipe:{slug}/m"
    assert call(second, model) == 404  # the second server now holds the project's providers
    assert (
        first.post(
            "/external-providers", json={"slug": slug, "baseUrl": f"{fake_provider.url}/v1"}
        ).status_code
        == 201
    )
    changed = time.monotonic()
    while call(second, model) != 200:
        assert time.monotonic() - changed < 5, "the change did not reach the second server"
        time.sleep(0.05)
    # And a removal the same way.
    assert first.delete(f"/external-providers/{slug}").status_code == 200
    changed = time.monotonic()
    while call(second, model) != 404:
        assert time.monotonic() - changed < 5, "the removal did not reach the second server"
        time.sleep(0.05)
