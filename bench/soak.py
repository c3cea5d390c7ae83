"""Soak: the gateway under steady load for minutes, with logging, the cache and criteria on.

One run starts, on loopback only and in a throw-away directory, the fake provider of the test
suite (its own process: it speaks OpenAI's and Anthropic's wire protocols, judges included) and
``tunepipe serve`` (SQLite, logging on), creates a criterion judged by a fake judge, and then
keeps ``--concurrency`` clients calling for ``--duration`` seconds, mixing:

* a cached call (``op-cache: readWrite``, a handful of prompts, so most are hits),
* a call judged by the criterion (``op-criteria``: one more upstream call per request),
* a streamed call with a unique prompt.

It prints, against the targets in ``docs/performance.md``: requests and errors, requests/s,
the server's resident memory after warm-up and at the end (growth must stay under 10 %), and
the calls answered against the rows in ``logged_calls`` once the server has stopped (0 lost).

Not a test: the figures depend on the machine. The script exits non-zero when the setup is
broken, or with ``--strict`` when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import free_port, stop, wait_http  # noqa: E402  (the sibling benchmark's helpers)

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "opk_soak" + "x" * 38
RSS_GROWTH_MAX = 0.10
CACHED_PROMPTS = 8


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds in, MiB)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def fake_provider(tmp: Path) -> Iterator[str]:
    """The suite's fake provider, in a process of its own so that it does not share the load
    generator's interpreter."""
    port = free_port()
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from fakes.provider import running_fake_provider;"
        "cm = running_fake_provider(int(sys.argv[2])); cm.__enter__(); time.sleep(10**9)"
    )
    with (tmp / "fake.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(ROOT / "tests"), str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_requests", 30, proc)
        yield url
    finally:
        stop(proc)


@contextlib.contextmanager
def server(tmp: Path, upstream: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    home = tmp / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEPIPE_", "OPENAI_", "ANTHROPIC_"))}
    env |= {
        "TUNEPIPE_HOME": str(home),
        "TUNEPIPE_API_KEY": API_KEY,
        "TUNEPIPE_DEFAULT_MODEL": "false",
        "OPENAI_BASE_URL": f"{upstream}/v1",
        "OPENAI_API_KEY": "x",
        "ANTHROPIC_BASE_URL": upstream,
        "ANTHROPIC_API_KEY": "x",
    }
    with (tmp / "serve.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunepipe", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", 60, proc)
        yield base, proc, home / "tunepipe.db"
    finally:
        stop(proc)


async def one_call(session: aiohttp.ClientSession, base: str, i: int, criterion: str, tally: Tally) -> None:
    kind = i % 3
    body: dict[str, object] = {"model": "gpt-4o-mini", "metadata": {"soak": str(kind)}}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if kind == 0:
        body["messages"] = [{"role": "user", "content": f"cached prompt {i % CACHED_PROMPTS}"}]
        headers["op-cache"] = "readWrite"
    elif kind == 1:
        body["messages"] = [{"role": "user", "content": f"please judge call {i}"}]
        headers["op-criteria"] = json.dumps([criterion])
    else:
        body["messages"] = [{"role": "user", "content": f"stream call {i} with a few words"}]
        body["stream"] = True
    tally.sent += 1
    try:
        async with session.post(f"{base}/api/v1/chat/completions", json=body, headers=headers) as r:
            payload = await r.read()
            if r.status != 200:
                tally.error(f"HTTP {r.status}")
            elif kind == 2 and b"data: [DONE]" not in payload:
                tally.error("stream without [DONE]")
            else:
                tally.ok += 1
    except (TimeoutError, aiohttp.ClientError) as exc:
        tally.error(type(exc).__name__)


async def drive(base: str, pid: int, criterion: str, args: argparse.Namespace) -> Tally:
    tally = Tally()
    counter = iter(range(10**12))
    started = time.monotonic()
    deadline = started + args.duration

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            await one_call(session, base, next(counter), criterion, tally)

    async def sample() -> None:
        while time.monotonic() < deadline:
            tally.rss_mb.append((time.monotonic() - started, rss_mib(pid)))
            await asyncio.sleep(args.sample_every)

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(sample(), *(client(session) for _ in range(args.concurrency)))
    tally.rss_mb.append((time.monotonic() - started, rss_mib(pid)))
    return tally


def create_criterion(base: str) -> str:
    import urllib.request

    body = {
        "name": "soak-polite",
        "instructions": "Is the answer polite?",
        "judge_model": "anthropic:judge-polite",
    }
    req = urllib.request.Request(
        f"{base}/api/v1/criteria",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return str(json.loads(r.read())["id"])


def count_rows(db: Path) -> tuple[int, int]:
    """Rows of the calls made (model gpt-4o-mini), and rows of the judges' calls for criteria."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        calls = conn.execute("SELECT count(*) FROM logged_calls WHERE model = 'gpt-4o-mini'").fetchone()[0]
        other = conn.execute("SELECT count(*) FROM logged_calls WHERE model <> 'gpt-4o-mini'").fetchone()[0]
        return int(calls), int(other)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="Seconds of load (default 600).")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--warmup", type=float, default=60.0, help="Seconds before the RSS baseline (default 60).")
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--strict", action="store_true", help="Exit 1 when a target is missed.")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="tunepipe-soak-") as name:
        tmp = Path(name)
        with fake_provider(tmp) as upstream:
            with server(tmp, upstream) as (base, proc, db):
                criterion = create_criterion(base)
                tally = asyncio.run(drive(base, proc.pid, criterion, args))
            rows, judged = count_rows(db)  # the server has stopped: every log it took is written
    warm = [mb for t, mb in tally.rss_mb if t >= args.warmup] or [tally.rss_mb[-1][1]]
    growth = (warm[-1] - warm[0]) / warm[0] if warm[0] else 0.0
    errors = sum(tally.errors.values())
    lost = tally.sent - rows
    print(
        f"soak: {args.duration:.0f} s at concurrency {args.concurrency} (cache, criteria, streams, logging)"
    )
    print(f"  requests {tally.sent}, answered 200 {tally.ok}, errors {errors} {tally.errors or ''}")
    print(f"  throughput {tally.sent / args.duration:.0f} requests/s")
    print(
        f"  server RSS after {args.warmup:.0f} s warm-up {warm[0]:.0f} MiB, at the end {warm[-1]:.0f} MiB, "
    )
    peak = max(mb for _, mb in tally.rss_mb)
    print(f"    peak {peak:.0f} MiB: growth {growth:+.1%} (target < {RSS_GROWTH_MAX:.0%})")
    print(f"  logged rows {rows} for {tally.sent} requests: {max(lost, 0)} lost (+{judged} judge calls)")
    passed = errors == 0 and lost <= 0 and growth < RSS_GROWTH_MAX
    print("PASS" if passed else "FAIL")
    return 0 if passed or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
