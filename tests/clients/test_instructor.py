"""instructor over the openai SDK pointed at tunepipe: pydantic objects asked for in TOOLS mode
(a forced tool call), JSON mode (JSON in the text), JSON_SCHEMA mode (``response_format``), with
the async client and as a stream of partial objects.

The client runs in the ecosystem virtualenv (``ecosystem_python``) as a subprocess against the
live server. The fake provider's ``tool-then-answer`` fills every string argument of the forced
tool with the user's text, and ``teacher-extract`` reads a person out of it, so each object
holds what the request said.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clients.conftest import logged_calls
from clients.venvs import run_json
from conftest import FakeProvider, Gateway

HERE = Path(__file__).resolve().parent
ECHO = "gemini:gemini-2.0-flash"
TOOL = "gemini:tool-then-answer"
EXTRACT = "gemini:teacher-extract"

pytestmark = [
    pytest.mark.slow,
    # The first test builds the virtualenv (once per requirements file) and runs the client.
    pytest.mark.timeout(900),
    pytest.mark.parametrize("gateway", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def seen(gateway: Gateway, fake_provider: FakeProvider, ecosystem_python: Path) -> dict[str, Any]:
    fake_provider.clear()
    out = run_json(
        [
            ecosystem_python,
            HERE / "instructor_client.py",
            f"{gateway.root}/v1",
            gateway.key,
            ECHO,
            TOOL,
            EXTRACT,
        ]
    )
    out["fake_requests"] = fake_provider.requests()
    return out


def test_instructor_tools_mode_parses_the_forced_call(gateway: Gateway, seen: dict[str, Any]) -> None:
    assert seen["tools"] == {"object": {"name": "Tromso", "country": "Tromso"}, "tool_name": "Place"}
    assert seen["async_tools"] == {"name": "Svalbard", "country": "Svalbard"}
    [logged] = logged_calls(gateway, "Tromso")
    assert logged["reqPayload"]["tool_choice"] == {"type": "function", "function": {"name": "Place"}}
    assert logged["finishReason"] == "tool_calls"


def test_instructor_partial_stream_grows_to_the_object(seen: dict[str, Any]) -> None:
    partials = seen["partial"]
    assert len(partials) > 1
    assert partials[-1] == {"name": "Lofoten", "country": "Lofoten"}
    assert partials[0] != partials[-1]


def test_instructor_json_mode_reads_the_text(seen: dict[str, Any]) -> None:
    assert seen["json"] == {"name": "Ada", "age": 36, "city": "London"}


def test_instructor_json_schema_mode_sends_the_schema(seen: dict[str, Any]) -> None:
    assert seen["json_schema"] == {"name": "Bergen", "country": "Bergen"}
    sent = next(
        r["body"]
        for r in seen["fake_requests"]
        if r["body"] and (r["body"].get("response_format") or {}).get("type") == "json_schema"
    )
    assert set(sent["response_format"]["json_schema"]["schema"]["properties"]) == {"name", "country"}
