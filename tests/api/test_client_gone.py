"""A client that hangs up on a non-streaming call: the upstream request is dropped with it and
the call is logged as 499 (client closed request), not as answered."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from conftest import FakeProvider, Gateway


def upstream_request(fake: FakeProvider, marker: str) -> dict[str, Any] | None:
    found = [r for r in fake.requests() if marker in str(r["body"].get("messages"))]
    return found[-1] if found else None


def test_client_gone_non_streaming_call_is_logged_499_and_upstream_dropped(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    marker = uuid.uuid4().hex
    body = {"model": "slow-3000", "messages": [{"role": "user", "content": marker}]}
    started = time.monotonic()
    with (
        httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.key}"}) as h,
        pytest.raises(httpx.ReadTimeout),
    ):
        h.post("/chat/completions", json=body, timeout=httpx.Timeout(10, read=0.2))
    logged = gateway.wait_for_log(marker, timeout_s=3)
    assert logged["statusCode"] == 499
    # Logged when the client left (~0.2 s), not when the 3 s answer would have come.
    assert time.monotonic() - started < 1.5
    assert logged["respPayload"]["error"]["message"]
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.key}"}) as h:
        listed = h.get("/logs", params={"contains": marker}).json()["data"]
    assert [c["statusCode"] for c in listed] == [499]
    assert listed[0]["durationMs"] < 1000
    # The upstream saw its connection dropped long before it would have answered.
    deadline = time.monotonic() + 2
    while (seen := upstream_request(fake_provider, marker)) is None or "hung_up_after_ms" not in seen:
        assert time.monotonic() < deadline, f"the upstream connection stayed open: {seen}"
        time.sleep(0.02)
    assert seen["hung_up_after_ms"] < 1000
