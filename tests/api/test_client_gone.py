"""A client that hangs up on a non-streaming call: the upstream request is dropped with it and
the call is logged as 499 (client closed request), not as answered, on every endpoint."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import FakeProvider, Gateway


def upstream_request(fake: FakeProvider, marker: str) -> dict[str, Any] | None:
    found = [r for r in fake.requests() if marker in str(r["body"])]
    return found[-1] if found else None


def _chat(model: str, m: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": m}]}


# (path, body for a marker): each served by an upstream the fake provider makes wait 3 s.
CALLS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "chat": ("/chat/completions", lambda m: _chat("slow-3000", m)),
    "responses": ("/responses", lambda m: {"model": "slow-3000", "input": m}),
    "messages": ("/messages", lambda m: {**_chat("slow-3000", m), "max_tokens": 16}),
    "messages-anthropic": ("/messages", lambda m: {**_chat("anthropic:slow-3000", m), "max_tokens": 16}),
    "embeddings": ("/embeddings", lambda m: {"model": "slow-3000", "input": m}),
    "completions": ("/completions", lambda m: {"model": "slow-3000", "prompt": m}),
}


@pytest.mark.parametrize("endpoint", list(CALLS))
def test_client_gone_non_streaming_call_is_logged_499_and_upstream_dropped(
    gateway: Gateway, fake_provider: FakeProvider, endpoint: str
) -> None:
    path, make_body = CALLS[endpoint]
    marker = uuid.uuid4().hex
    started = time.monotonic()
    with (
        httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.key}"}) as h,
        pytest.raises(httpx.ReadTimeout),
    ):
        h.post(path, json=make_body(marker), timeout=httpx.Timeout(10, read=0.2))
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


def test_client_gone_while_the_answer_is_judged_is_logged_499_with_the_answer(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    name = f"slow-judge-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.key}"}) as h:
        created = h.post(
            "/criteria",
            json={"name": name, "instructions": "Anything goes.", "judge_model": "slow-3000-judge-first"},
        )
        assert created.status_code == 201, created.text
        marker = uuid.uuid4().hex
        with pytest.raises(httpx.ReadTimeout):
            h.post(
                "/chat/completions",
                json=_chat("gpt-4o-mini", marker),
                headers={"op-criteria": f'["{name}"]'},
                timeout=httpx.Timeout(10, read=0.5),
            )
        deadline = time.monotonic() + 3
        while not (listed := h.get("/logs", params={"contains": marker}).json()["data"]):
            assert time.monotonic() < deadline, "the call was not logged"
            time.sleep(0.05)
        assert [(c["statusCode"], c["errorMessage"]) for c in listed] == [
            (499, "client disconnected before the answer was judged")
        ]
        assert listed[0]["durationMs"] < 1500
        # The answer the upstream gave is kept, as is what it cost.
        logged = h.get(f"/logs/{listed[0]['id']}").json()
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: {marker}"
    assert listed[0]["outputTokens"] and listed[0]["cost"]
    # The judge's upstream request was dropped too.
    deadline = time.monotonic() + 2
    while (seen := upstream_request(fake_provider, marker)) is None or "hung_up_after_ms" not in seen:
        assert time.monotonic() < deadline, f"the judge's connection stayed open: {seen}"
        time.sleep(0.02)
    assert seen["body"]["model"] == "slow-3000-judge-first" and seen["hung_up_after_ms"] < 1500
