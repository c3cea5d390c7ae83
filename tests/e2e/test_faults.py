"""Faults of a real ``tunepipe serve``: the process killed under load, its database unreachable
or locked. Every call that was answered must end up logged, once, in order; calls of keys seen
recently keep being answered through an outage; the server log stays short."""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from conftest import PG_DSN, FakeProvider, _start, base_env, free_port, server_log

pytestmark = pytest.mark.slow

MODEL = "openai:gpt-4o-mini"


def new_key() -> str:
    return f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"


def chat(http: httpx.Client, key: str, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    return http.post(
        "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})}
    )


def sqlite_request_ids(home: Path) -> list[str]:
    """Request ids of the logged calls, in the order they were inserted."""
    with contextlib.closing(sqlite3.connect(home / "tunepipe.db")) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM logged_calls ORDER BY rowid")]


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_faults_kill_9_under_load_loses_no_answered_call(fake_provider: FakeProvider, tmp_path: Path) -> None:
    env = base_env(tmp_path, fake_provider, None)
    key = new_key()
    env["TUNEPIPE_API_KEY"] = key
    env["TUNEPIPE_WORKER"] = "false"
    # A long linger keeps answered calls in memory only, as a busy writer would: without the
    # spool every one of them would be lost to the kill.
    env["TUNEPIPE_LOG_LINGER_S"] = "0.5"
    # Two server processes on one home (as `--workers 2` runs them, started faster): a spool
    # each, both replayed by the one started after the kill.
    ports = [free_port(), free_port()]
    procs = [_start(env, port) for port in ports]
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[n % 2]}/api/v1", timeout=10) as http:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = chat(http, key, f"load {n}-{i}")
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        answered.append(r.headers["x-request-id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(answered) >= 200, 30, "the load did not get going")
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    before = set(sqlite_request_ids(tmp_path))
    lost_without_spool = set(answered) - before
    assert lost_without_spool, "every answered call was in the database already: nothing to test"
    owners = {path.name.split(".")[0] for path in (tmp_path / "spool").glob("*.seg")}
    assert len(owners) == 2, owners  # one spool per process, never shared

    proc = _start(env, ports[0])  # the same home: the dead processes' spools are replayed
    try:
        wait_until(
            lambda: set(answered) <= set(sqlite_request_ids(tmp_path)),
            30,
            "answered calls without a log row after the restart",
        )
        stored = sqlite_request_ids(tmp_path)
        assert len(stored) == len(set(stored)), "a replayed call was stored twice"
        # The dead spools go once replayed (just after their rows are committed).
        wait_until(
            lambda: not [p for p in (tmp_path / "spool").glob("*") if p.name.split(".")[0] in owners],
            10,
            "the dead processes' spools were not removed after their replay",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert len(answered) > 200
    # The spool of the restarted process, committed entirely, is removed on the way out.
    assert not list((tmp_path / "spool").glob("*.seg"))


def test_faults_sqlite_locked_by_another_writer_delays_logs_only(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    env = base_env(tmp_path, fake_provider, None)
    key = new_key()
    env["TUNEPIPE_API_KEY"] = key
    env["TUNEPIPE_WORKER"] = "false"
    port = free_port()
    proc = _start(env, port)
    answered: list[str] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=10) as http:
            r = chat(http, key, "before the lock")
            assert r.status_code == 200
            answered.append(r.headers["x-request-id"])
            locker = sqlite3.connect(tmp_path / "tunepipe.db", isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                until = time.monotonic() + 3
                while time.monotonic() < until:
                    r = chat(http, key, f"locked {len(answered)}")
                    assert r.status_code == 200, r.text
                    answered.append(r.headers["x-request-id"])
                    time.sleep(0.05)
                stored_while_locked = set(sqlite_request_ids(tmp_path))
            finally:
                locker.execute("COMMIT")
                locker.close()
        assert set(answered[5:]).isdisjoint(stored_while_locked)  # the writer really was held up
        wait_until(lambda: sqlite_request_ids(tmp_path)[-len(answered) :] == answered, 30, "logs missing")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


class Proxy:
    """A TCP proxy on loopback that can refuse connections: ``down()`` closes the listener and
    every connection through it, ``up()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):  # wakes the accepting thread (close alone would not)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def fault_database() -> Iterator[str]:
    """A Postgres database of this test's own (the shared server is never stopped)."""
    name = f"tp_fault_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_faults_postgres_outage_serves_known_keys_and_loses_no_log(
    fake_provider: FakeProvider, tmp_path: Path, fault_database: str
) -> None:
    pg = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    proxy = Proxy((str(pg.get("host", "127.0.0.1")), int(pg.get("port", 5432))))
    user = pg.get("user", "postgres")
    env = base_env(tmp_path, fake_provider, f"postgresql://{user}@127.0.0.1:{proxy.port}/{fault_database}")
    key = new_key()
    env["TUNEPIPE_API_KEY"] = key  # the job worker runs too: its polls fail all along
    port = free_port()
    proc = _start(env, port)
    answered: list[str] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=20) as http:
            for i in range(5):  # the key and the project's settings are read while all is well
                r = chat(http, key, f"before {i}")
                assert r.status_code == 200, r.text
                answered.append(r.headers["x-request-id"])
            log_size = server_log(env, port).stat().st_size
            proxy.down()
            until = time.monotonic() + 12
            unknown: list[httpx.Response] = []
            reads: list[httpx.Response] = []
            while time.monotonic() < until:
                r = chat(http, key, f"during {len(answered)}")
                assert r.status_code == 200, r.text
                answered.append(r.headers["x-request-id"])
                if len(answered) % 20 == 0:
                    unknown.append(chat(http, new_key(), "never seen"))
                    # What needs the database itself fails cleanly; a cache that cannot be read
                    # is a miss.
                    reads.append(http.get("/datasets", headers={"Authorization": f"Bearer {key}"}))
                    cached = chat(http, key, "cache me", headers={"op-cache": "readWrite"})
                    assert cached.status_code == 200, cached.text
                    answered.append(cached.headers["x-request-id"])
                time.sleep(0.02)
            during = server_log(env, port).read_bytes()[log_size:].decode(errors="replace")
            proxy.up()
        assert unknown and all(r.status_code == 503 for r in unknown)
        error = unknown[0].json()["error"]
        assert error["code"] == "database_unavailable" and error["type"] == "api_error"
        assert unknown[0].headers["retry-after"]
        assert reads and all(r.status_code == 503 for r in reads)
        assert reads[0].json()["error"]["code"] == "database_unavailable"
        # One line per interval, not one (with a traceback) per request.
        assert "Traceback" not in during
        errors = [line for line in during.splitlines() if "ERROR" in line or "WARNING" in line]
        assert 1 <= len(errors) <= 12, during
        assert "database unreachable" in during

        def stored() -> list[str]:
            with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{fault_database}") as conn:
                rows = conn.execute("SELECT request_id FROM logged_calls ORDER BY ctid").fetchall()
            return [r[0] for r in rows]

        wait_until(lambda: len(stored()) >= len(answered), 30, "logs missing after the outage")
        assert stored() == answered  # all of them, once each, in the order they were answered
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        proxy.down()
