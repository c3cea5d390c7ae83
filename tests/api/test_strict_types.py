"""Typed fields take their own JSON type only: a string where a number or a boolean belongs
(``"n": "2"``, ``"stream": "yes"``) is a 400 in the error envelope naming the field, never
coerced and never forwarded, on every endpoint that reads a model request (chat completions,
/responses, /messages, /embeddings, legacy /completions). The refused call is logged as the
endpoint logs its other 400s. Integers written with a zero fraction (``2.0``) are JSON integers
and stay accepted.

Bodies are sent by the real SDKs (``extra_body`` puts the wrong type on the wire) where they
can send them, else with httpx.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import anthropic
import openai
import pytest

from conftest import FakeProvider, Gateway


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def _logged(gateway: Gateway, marker: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The log row of the call whose request mentions ``marker``, once it is written."""
    deadline = time.monotonic() + timeout_s
    with gateway.http() as h:
        while True:
            rows = h.get("/logs", params={"contains": marker}).json()["data"]
            if rows:
                return dict(rows[0])
            assert time.monotonic() < deadline, f"no log of the call {marker}"
            time.sleep(0.05)


def _refused(error: openai.APIStatusError, field: str) -> None:
    assert error.status_code == 400
    body = error.response.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == field
    assert f"`{field}`" in body["error"]["message"]


CHAT = [
    ("stream", "yes"),
    ("n", "2"),
    ("temperature", "0.5"),
    ("max_tokens", "10"),
    ("logprobs", "true"),
    ("top_logprobs", "2"),
    ("parallel_tool_calls", "false"),
    ("n", True),  # a boolean is not a number either
    ("n", 1.5),
    ("logprobs", 1),  # nor a number a boolean
]


@pytest.mark.parametrize(("field", "value"), CHAT, ids=[f"{f}={v!r}" for f, v in CHAT])
def test_strict_types_chat_refuses_the_wrong_json_type(
    gateway: Gateway, fake_provider: FakeProvider, field: str, value: Any
) -> None:
    m = _marker()
    fake_provider.clear()
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": m}], extra_body={field: value}
        )
    _refused(caught.value, field)
    assert fake_provider.requests() == []
    row = _logged(gateway, m)
    assert row["statusCode"] == 400 and f"`{field}`" in row["errorMessage"]
    assert gateway.wait_for_log(m)["reqPayload"][field] == value  # logged as sent


def test_strict_types_chat_takes_integers_written_as_floats(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    answer = gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": m}],
        extra_body={"n": 2.0, "max_completion_tokens": 64.0},
    )
    assert len(answer.choices) == 2
    sent = fake_provider.last()["body"]
    assert (sent["n"], sent["max_completion_tokens"]) == (2.0, 64.0)  # forwarded as written


RESPONSES = [
    ("stream", "yes"),
    ("temperature", "0.5"),
    ("top_p", "1"),
    ("max_output_tokens", "10"),
    ("parallel_tool_calls", "true"),
    ("store", "false"),
]


@pytest.mark.parametrize(("field", "value"), RESPONSES, ids=[f"{f}={v!r}" for f, v in RESPONSES])
def test_strict_types_responses_refuse_the_wrong_json_type(
    gateway: Gateway, fake_provider: FakeProvider, field: str, value: Any
) -> None:
    fake_provider.clear()
    for model in ("gpt-4o-mini", "anthropic:claude-3-5-sonnet-20241022"):  # relayed, translated
        with pytest.raises(openai.BadRequestError) as caught:
            gateway.client().responses.create(model=model, input=_marker(), extra_body={field: value})
        _refused(caught.value, field)
    assert fake_provider.requests() == []


MESSAGES = [("max_tokens", "10"), ("stream", "yes"), ("temperature", "0.5"), ("top_k", "5")]


@pytest.mark.parametrize(("field", "value"), MESSAGES, ids=[f"{f}={v!r}" for f, v in MESSAGES])
def test_strict_types_messages_refuse_the_wrong_json_type(
    gateway: Gateway, fake_provider: FakeProvider, field: str, value: Any
) -> None:
    m = _marker()
    fake_provider.clear()
    client = anthropic.Anthropic(base_url=gateway.root, api_key=gateway.key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="gpt-4o-mini",
            max_tokens=16,
            messages=[{"role": "user", "content": m}],
            extra_body={field: value},
        )
    error = caught.value.response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"{field}:")
    assert fake_provider.requests() == []
    assert _logged(gateway, m)["statusCode"] == 400


def test_strict_types_embeddings_refuse_the_wrong_json_type(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    fake_provider.clear()
    for value in ("8", True, 8.5):
        m = _marker()
        with pytest.raises(openai.BadRequestError) as caught:
            gateway.client().embeddings.create(
                model="text-embedding-3-small", input=m, extra_body={"dimensions": value}
            )
        _refused(caught.value, "dimensions")
        assert _logged(gateway, m)["statusCode"] == 400
    assert fake_provider.requests() == []


COMPLETIONS = [("max_tokens", "10"), ("n", "2"), ("echo", "true"), ("temperature", "0.5"), ("logprobs", "2")]


@pytest.mark.parametrize(("field", "value"), COMPLETIONS, ids=[f"{f}={v!r}" for f, v in COMPLETIONS])
def test_strict_types_completions_refuse_the_wrong_json_type(
    gateway: Gateway, fake_provider: FakeProvider, field: str, value: Any
) -> None:
    m = _marker()
    fake_provider.clear()
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().completions.create(
            model="gpt-3.5-turbo-instruct", prompt=m, extra_body={field: value}
        )
    _refused(caught.value, field)
    assert fake_provider.requests() == []
    assert _logged(gateway, m)["statusCode"] == 400
