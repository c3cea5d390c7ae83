"""Fixtures of the client tests: each client's environment, built once per cache key, and a
look at what tunepipe logged of a client's calls."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from clients.venvs import node_modules, python_env
from conftest import Gateway

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def openai3_python() -> Path:
    """The interpreter of the openai 3.x + Agents SDK virtualenv."""
    return python_env("openai3", HERE / "openai3-requirements.txt")


@pytest.fixture(scope="session")
def ecosystem_python() -> Path:
    """The interpreter of the virtualenv with langchain-openai, llm, litellm and instructor."""
    return python_env("ecosystem", HERE / "ecosystem-requirements.txt")


@pytest.fixture(scope="session")
def node_openai() -> Path:
    """``node_modules`` with the pinned openai npm SDK (and zod for its structured-output helper)."""
    return node_modules("node", HERE / "node")


def logged_calls(gateway: Gateway, text: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The calls tunepipe logged whose request or response contains ``text``, newest first, with
    their bodies (once at least one is written: the log writer works behind the answer)."""
    deadline = time.monotonic() + timeout_s
    with gateway.http() as http:
        while True:
            found = http.get("/logs", params={"contains": text, "bodies": "true"})
            assert found.status_code == 200, found.text
            data: list[dict[str, Any]] = found.json()["data"]
            if data or time.monotonic() > deadline:
                return data
            time.sleep(0.05)
