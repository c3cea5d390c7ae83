"""Shared fixtures: a fake provider on a loopback port and a real ``tunepipe serve`` process per
database backend (SQLite and Postgres), driven through the real SDKs.

Every test that takes ``gateway`` runs once against each backend. The Postgres backend gets a
schema of its own per test session, so concurrent runs on one server never meet.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import psycopg
import pytest

from fakes.provider import running_fake_provider

PG_DSN = os.environ.get("TUNEPIPE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
KEY_RE = re.compile(r"opk_[A-Za-z0-9]{42}")
ADMIN_KEY_RE = re.compile(r"opa_[A-Za-z0-9]{42}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeProvider:
    url: str

    def requests(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/_requests").json())

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_requests")

    def last(self) -> dict[str, Any]:
        return self.requests()[-1]


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    with running_fake_provider() as url:
        yield FakeProvider(url)


@dataclass
class Gateway:
    """A running ``tunepipe serve`` and the ways to talk to it."""

    backend: str
    root: str  # http://127.0.0.1:<port>
    key: str  # read/write key of the default project
    read_only_key: str
    env: dict[str, str]
    home: Path
    process: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"{self.root}/api/v1"

    def client(self, key: str | None = None, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key or self.key, max_retries=0, **kwargs)

    def http(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=30
        )

    @property
    def admin_key(self) -> str:
        """An admin key of this installation (``tunepipe admin create-key``), made on first use."""
        if "admin_key" not in self.extra:
            made = ADMIN_KEY_RE.search(self.cli("admin", "create-key", "--name", "tests").stdout)
            assert made is not None
            self.extra["admin_key"] = made.group(0)
        return str(self.extra["admin_key"])

    def cli(
        self, *args: str, check: bool = True, wide: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``tunepipe …`` with the server's environment; ``wide``: tables never wrap."""
        env = {**self.env, "COLUMNS": "250"} if wide else self.env
        return subprocess.run(
            [sys.executable, "-m", "tunepipe", *args],
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def latest(self, key: str | None = None) -> Any:
        with self.http(key) as h:
            return h.get("/local-testing-only-get-latest-logged-call").json()

    def wait_for_log(self, marker: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """The project's latest logged call, once its request mentions ``marker`` (the SDK may
        report a call after it has returned)."""
        deadline = time.monotonic() + timeout_s
        while True:
            latest = self.latest()
            if latest and marker in json.dumps(latest["reqPayload"]):
                return dict(latest)
            assert time.monotonic() < deadline, f"no log mentioning {marker} appeared; latest: {latest}"
            time.sleep(0.05)


def server_log(env: dict[str, str], port: int) -> Path:
    """Where the server started by :func:`_start` on ``port`` writes its output."""
    return Path(env["TUNEPIPE_HOME"]) / f"serve-{port}.log"


def _start(
    env: dict[str, str], port: int, *args: str, python: str = sys.executable, startup_s: float = 60
) -> subprocess.Popen[bytes]:
    """``tunepipe serve`` on ``port`` with ``python`` (another virtualenv's, say), once healthy."""
    # Output goes to a file, never to a pipe nobody reads (a full pipe would block the server).
    with server_log(env, port).open("ab") as out:
        proc = subprocess.Popen(
            [python, "-m", "tunepipe", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tunepipe serve exited early:\n{server_log(env, port).read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"tunepipe serve did not become healthy in {startup_s:.0f} s")


def base_env(home: Path, fake: FakeProvider, database_url: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TUNEPIPE_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))
    }
    env.update(
        TUNEPIPE_HOME=str(home),
        OPENAI_BASE_URL=f"{fake.url}/v1",
        OPENAI_API_KEY="sk-fake-openai",
        ANTHROPIC_BASE_URL=fake.url,
        ANTHROPIC_API_KEY="ak-fake-anthropic",
        GEMINI_BASE_URL=f"{fake.url}/v1",
        GEMINI_API_KEY="gk-fake-gemini",
        PYTHONUNBUFFERED="1",
        # Tests register tiny local models themselves; the default model has a test of its own.
        TUNEPIPE_DEFAULT_MODEL="false",
        # Tests point project upstreams at servers on loopback; the network policy's own tests
        # start a gateway without this (tests/api/test_network_policy.py).
        TUNEPIPE_UPSTREAM_ALLOW="127.0.0.1/32,::1/128,localhost",
    )
    if database_url:
        env["TUNEPIPE_DATABASE_URL"] = database_url
    return env


def people_entries(people: list[tuple[str, int, str]], split: str = "TEST") -> list[dict[str, Any]]:
    """Dataset entries of the extraction task for ``(name, age, city)`` people, answered right."""
    return [
        {
            "messages": [
                {"role": "system", "content": "Extract name, age and city as JSON."},
                {"role": "user", "content": f"{n} is {age} and lives in {city}."},
                {"role": "assistant", "content": json.dumps({"name": n, "age": age, "city": city})},
            ],
            "split": split,
        }
        for n, age, city in people
    ]


def _serving(gw: Gateway) -> Iterator[Gateway]:
    """Run ``tunepipe serve`` for ``gw`` on a free port while the caller holds it."""
    port = free_port()
    gw.root = f"http://127.0.0.1:{port}"
    gw.process = _start(gw.env, port)
    try:
        yield gw
    finally:
        gw.process.terminate()
        gw.process.wait(30)


@contextlib.contextmanager
def own_gateway(fake: FakeProvider, home: Path, **settings: str) -> Iterator[Gateway]:
    """A ``tunepipe serve`` of the caller's own (SQLite, under ``home``, the default project's
    key known), with extra environment ``settings``: for tests that must not share, or change,
    the session's servers."""
    env = base_env(home, fake, None)
    env.update(settings)
    env["TUNEPIPE_API_KEY"] = key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    gw = Gateway(backend="sqlite", root="", key=key, read_only_key="", env=env, home=home)
    yield from _serving(gw)


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A fresh Postgres schema, dropped at the end; the URL that selects it."""
    schema = f"tp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def migrated_engine(backend: str, tmp_path: Path) -> Iterator[Any]:
    """A migrated database of its own (SQLite under ``tmp_path``, or a fresh Postgres schema
    dropped afterwards): the engine, for tests that use the repositories directly."""
    from tunepipe.db.engine import make_engine
    from tunepipe.db.migrate import upgrade

    if backend == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'tunepipe.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    schema = f"tp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    eng = make_engine(f"{PG_DSN}?options=-csearch_path%3D{schema}")
    try:
        upgrade(eng)
        yield eng
    finally:
        eng.dispose()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_schema") if backend == "postgres" else None


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def gateway(
    request: pytest.FixtureRequest, fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    backend: str = request.param
    home = tmp_path_factory.mktemp(f"home-{backend}")
    env = base_env(home, fake_provider, database_url(backend, request))
    key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env["TUNEPIPE_API_KEY"] = key
    gw = Gateway(backend=backend, root="", key=key, read_only_key="", env=env, home=home)
    gw.cli("db", "upgrade")
    created = gw.cli("keys", "create", "--read-only", "--name", "tests")
    # The default project exists once the server has bootstrapped; create it first if needed.
    if created.returncode != 0 or not KEY_RE.search(created.stdout):
        raise RuntimeError(created.stdout + created.stderr)
    gw.read_only_key = KEY_RE.search(created.stdout).group(0)  # type: ignore[union-attr]
    yield from _serving(gw)
