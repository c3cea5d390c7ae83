"""Answers tunepipe composes itself are valid against OpenAI's response schemas: Anthropic's
translated into chat completions, mixtures of agents, cached answers replayed (as a whole and
as chunks), and answers carrying criteria results (extra fields are additive)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from conftest import Gateway
from openai_schema import check_completion, check_stream

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def ask(text: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.parametrize(
    "body",
    [
        ask("hello", "anthropic:claude-3-5-sonnet-20241022"),
        ask("weather in oslo", "anthropic:claude-3-5-sonnet-20241022", tools=[WEATHER]),
        ask("hello", "moa:gpt-4o-mini"),
    ],
    ids=["anthropic", "anthropic-tools", "moa"],
)
def test_translated_and_composed_answers_are_valid(gateway: Gateway, body: dict[str, Any]) -> None:
    with gateway.http() as h:
        answer = check_completion(h, body)
        check_stream(h, body)
    assert answer["choices"][0]["message"]["role"] == "assistant"


def test_cached_answers_replayed_are_valid(gateway: Gateway) -> None:
    body = ask(f"cache me {uuid.uuid4().hex}", "gpt-4o")
    with httpx.Client(
        base_url=gateway.base_url,
        headers={"Authorization": f"Bearer {gateway.key}", "op-cache": "readWrite"},
        timeout=30,
    ) as h:
        check_completion(h, body)  # stored
        hit = h.post("/chat/completions", json=body)
        assert hit.headers["op-cache-status"] == "HIT"
        check_completion(h, body)
        check_stream(h, body)  # replayed as chunks


def test_answers_with_criteria_results_are_valid(gateway: Gateway) -> None:
    name = f"schema-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        r = h.post(
            "/criteria", json={"name": name, "instructions": "Be polite.", "judge_model": "judge-polite"}
        )
        assert r.status_code == 201, r.text
    body = ask("please say hi", "gpt-4o", n=2)
    with httpx.Client(
        base_url=gateway.base_url,
        headers={"Authorization": f"Bearer {gateway.key}", "op-criteria": json.dumps([name])},
        timeout=30,
    ) as h:
        answer = check_completion(h, body)
        chunks = check_stream(h, body)
    assert name in answer["choices"][0]["criteria_results"]
    assert any(name in json.dumps(c) for c in chunks)
