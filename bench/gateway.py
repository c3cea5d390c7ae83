"""Gateway overhead: tunepipe in front of a canned upstream, against the upstream alone.

One run starts, on loopback only and in a throw-away directory:

* nginx answering ``POST /v1/chat/completions`` with a fixed chat completion (the upstream), and
* ``tunepipe serve`` with one worker, SQLite, and request logging on, pointed at that nginx,

then drives both with wrk and prints what the gateway adds, against the targets of the
performance issue (see ``docs/performance.md``):

* latency at concurrency 1: added p50 and p99 (gateway minus upstream, same run);
* throughput at concurrency 32: gateway requests/s (and the share of the upstream's);
* logging: requests sent vs logs enqueued, written and dropped by the writer (``/health``),
  vs rows in ``logged_calls`` after a graceful shutdown;
* the gateway features, in the same run: **cache hits** (``op-cache: readWrite`` on one
  request, so every call after the first is a hit) must add no more latency at concurrency 1
  than a proxied call and reach at least the proxied requests/s; and the proxied numbers with
  **every feature enabled but not triggered** (a key with rate limits that are counted but never
  reached, a model with a default fallback chain and retries, a mixture-of-agents configuration
  in the project, the cache store ready but not asked) must stay within 10 % of the plain runs
  and meet the same targets;
* the request-log **spool** (every record appended to a local file before the call is
  answered, ``docs/logging.md``): a second gateway with ``TUNEPIPE_LOG_SPOOL=false``, measured
  right after the first at each concurrency; what the spool adds to p50 at concurrency 1 must
  stay within 0.5 ms (and its share of throughput is printed).

Not a test: timings depend on the machine, so the script prints PASS/FAIL per target and exits
non-zero only when the setup is broken (missing tools, a server that does not start, failed
requests) or ``--strict`` is given. wrk counts requests in a Lua script, so "sent" is exact,
warm-up included. Every run is bounded by ``--duration``; the servers are stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TARGET_ADDED_P50_MS = 0.5
TARGET_RPS_C32 = 3_000.0
FEATURES_SHARE = 0.9  # enabled-but-idle features keep at least 90 % of the plain numbers
TARGET_SPOOL_ADDED_P50_MS = 0.5

API_KEY = "opk_bench" + "x" * 38  # the key format: opk_ + 42 alphanumerics
REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello to the benchmark."},
    ],
    "temperature": 0.2,
    "metadata": {"prompt_id": "bench"},
}
COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, benchmark.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 24, "completion_tokens": 4, "total_tokens": 28},
    "system_fingerprint": "fp_bench",
}

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    log_format status '$status';
    # The port wrk calls directly: no access log, the fastest this upstream gets.
    server {{
        listen 127.0.0.1:{direct_port};
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
    # The port the gateway calls: one log line per forwarded request, to count them.
    server {{
        listen 127.0.0.1:{gateway_port};
        access_log {tmp}/forwarded.log status buffer=256k flush=1s;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""

# wrk runs one Lua state per thread; `request()` counts what each thread writes, and `done()`
# (in the main state) sums the counters and prints one JSON line with exact latencies in µs.
WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
{headers}

local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) sent = 0 end
function request() sent = sent + 1; return wrk.format() end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("sent") end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"sent":%d,"completed":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
    .. '"mean_us":%.1f,"errors":%d,"non2xx":%d}}\\n',
    total, summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class WrkResult:
    sent: int
    completed: int
    duration_us: int
    p50_us: int
    p99_us: int
    mean_us: float
    errors: int
    non2xx: int
    # CPU seconds each process used during the run: timings on a shared 2-core box are noisy,
    # CPU per request is the steadier measure of what a change saved.
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.completed / (self.duration_us / 1e6)

    def cpu_us_per_request(self, process: str) -> float:
        return self.cpu_s.get(process, 0.0) / max(self.completed, 1) * 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (everything in /proc/stat but idle and iowait)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool_path(name: str) -> str | None:
    # nginx lives in /usr/sbin, which is not on every user's PATH; py-spy in the venv.
    extra = [str(Path(sys.executable).parent), "/usr/sbin"]
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *extra]))


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {timeout_s:.0f}s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass(frozen=True)
class Upstream:
    pid: int
    direct: str  # base URL wrk calls
    for_gateway: str  # base URL the gateway calls; nginx logs one line per request here
    forwarded_log: Path

    def forwarded(self) -> int:
        """Requests the gateway forwarded (read after nginx has stopped and flushed its log)."""
        if not self.forwarded_log.exists():
            return 0
        return sum(1 for line in self.forwarded_log.read_text().splitlines() if line.strip())


@contextlib.contextmanager
def nginx(tmp: Path) -> Iterator[Upstream]:
    direct_port, gateway_port = free_port(), free_port()
    body = json.dumps(COMPLETION, separators=(",", ":"))
    assert "'" not in body and "\\" not in body  # nginx single-quoted string, no escapes
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, direct_port=direct_port, gateway_port=gateway_port, body=body))
    proc = subprocess.Popen(
        [tool_path("nginx") or "nginx", "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        for port in (direct_port, gateway_port):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {(tmp / 'nginx-error.log').read_text()}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start")
                time.sleep(0.05)
        yield Upstream(
            proc.pid,
            f"http://127.0.0.1:{direct_port}",
            f"http://127.0.0.1:{gateway_port}",
            tmp / "forwarded.log",
        )
    finally:
        stop(proc, signal.SIGQUIT)  # graceful: flushes the access log


@dataclass
class Gateway:
    base: str
    proc: subprocess.Popen[bytes]
    db: Path
    env: dict[str, str]

    def health(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.base}/health", timeout=5) as r:
            return dict(json.load(r)["logs"])

    def settle(self, timeout_s: float = 60.0) -> dict[str, int]:
        """Wait until the writer has written (or dropped) everything it accepted."""
        deadline = time.monotonic() + timeout_s
        while True:
            logs = self.health()
            done = logs["queueDepth"] == 0 and logs["written"] + logs["dropped"] >= logs["enqueued"]
            if done or time.monotonic() > deadline:
                return logs
            time.sleep(0.2)


@contextlib.contextmanager
def gateway(
    tmp: Path, upstream: str, log_path: Path, *, home_name: str = "home", extra: dict[str, str] | None = None
) -> Iterator[Gateway]:
    port = free_port()
    home = tmp / home_name
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEPIPE_", "OPENAI_"))}
    env |= {
        "TUNEPIPE_HOME": str(home),
        "TUNEPIPE_API_KEY": API_KEY,
        "TUNEPIPE_WORKERS": "1",
        "OPENAI_BASE_URL": f"{upstream}/v1",
        "OPENAI_API_KEY": "x",
        # Hermetic: no local model to register (or fetch); the bench measures the proxy path.
        "TUNEPIPE_DEFAULT_MODEL": "false",
    } | (extra or {})
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunepipe", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gw = Gateway(f"http://127.0.0.1:{port}", proc, home / "tunepipe.db", env)
    try:
        wait_http(f"{gw.base}/health", 60, proc)
        yield gw
    finally:
        stop(proc)


def wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    threads: int,
    duration_s: float,
    servers: dict[str, int],
) -> WrkResult:
    """One wrk run; ``servers`` names the pids whose CPU time to account (wrk's is always)."""
    cmd = [
        "wrk",
        "--latency",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "-s",
        str(script),
        url,
    ]
    before = {name: cpu_seconds(pid) for name, pid in servers.items()}
    busy = machine_busy_seconds()
    children = os.times()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=True).stdout
    after = os.times()
    busy = machine_busy_seconds() - busy
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result = WrkResult(**json.loads(line.removeprefix("WRKJSON ")))
    result.cpu_s = {name: cpu_seconds(pid) - before[name] for name, pid in servers.items()}
    result.cpu_s["wrk"] = (
        after.children_user + after.children_system - children.children_user - children.children_system
    )
    # Whatever else ran on the machine meanwhile: a busy neighbour makes timings meaningless.
    result.cpu_s["others"] = max(0.0, busy - sum(result.cpu_s.values()))
    return result


@contextlib.contextmanager
def profiling(pid: int, out: Path | None, duration_s: float, *, gil: bool) -> Iterator[None]:
    """``py-spy record`` on the gateway while the block runs (when ``out`` is given); with
    ``gil``, only the thread holding the GIL is sampled, which shows where Python time goes."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(
        [tool_path("py-spy") or "py-spy", "record", "--pid", str(pid), "--threads", "--nonblocking",
         "--rate", "250", "--duration", str(int(duration_s)), "--output", str(out),
         "--format", {".svg": "flamegraph", ".json": "speedscope"}.get(out.suffix, "raw"),
         *(["--gil"] if gil else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        spy.wait(30)


FEATURES_MODEL = "gpt-4o"  # the model given a default fallback chain; plain runs use gpt-4o-mini


def wrk_script(
    path: Path, key: str, *, model: str = "gpt-4o-mini", headers: dict[str, str] | None = None
) -> Path:
    body = json.dumps({**REQUEST, "model": model}, separators=(",", ":"))
    lines = "\n".join(f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in (headers or {}).items())
    path.write_text(WRK_SCRIPT.format(body=body, key=key, headers=lines))
    return path


def enable_features(gw: Gateway, tmp: Path) -> str:
    """Turn every gateway feature on without triggering it; the rate-limited key to call with."""
    env = gw.env

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "tunepipe", *args], env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"tunepipe {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    out = cli("keys", "create", "--name", "limited", "--rpm", "100000000", "--tpm", "1000000000",
              "--max-concurrency", "10000")  # fmt: skip
    key = next(word for word in out.split() if word.startswith("opk_"))
    cli("routing", "set", FEATURES_MODEL, "-f", "gpt-4o-mini", "--retries", "2")
    cli("moa", "create", "bench", "--proposer", "gpt-4o-mini")
    return key


def count_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM logged_calls").fetchone()[0])


@dataclass
class Report:
    connections: int
    runs: dict[str, WrkResult]
    gateway_runs: list[WrkResult]
    logs: dict[str, int]  # the writer's counters from /health, once settled
    forwarded: int  # requests nginx saw from the gateway
    rows: int  # logged_calls after the gateway's graceful shutdown

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.gateway_runs)

    @property
    def answered(self) -> int:
        return sum(r.completed for r in self.gateway_runs)

    @property
    def failed(self) -> int:
        return sum(r.errors + r.non2xx for r in self.gateway_runs)

    @property
    def added_p50_ms(self) -> float:
        return (self.runs["c1_gateway"].p50_us - self.runs["c1_direct"].p50_us) / 1000

    @property
    def added_p99_ms(self) -> float:
        return (self.runs["c1_gateway"].p99_us - self.runs["c1_direct"].p99_us) / 1000

    @property
    def lost(self) -> int:
        """Calls that reached the provider (or were answered) but are not in the database."""
        # More rows than answers is no loss: calls in flight when a wrk run stopped were answered
        # (and logged) after wrk stopped counting them.
        return max(0, max(self.forwarded, self.answered) - self.rows) + self.logs["dropped"]

    @property
    def others_load(self) -> float:
        """Average CPU (1.0 = one core) that processes outside the bench used during the runs."""
        runs = self.runs.values()
        return sum(r.cpu_s.get("others", 0.0) for r in runs) / (sum(r.duration_us for r in runs) / 1e6)

    def added_ms(self, run: str) -> float:
        return (self.runs[run].p50_us - self.runs["c1_direct"].p50_us) / 1000

    @property
    def spool_added_p50_ms(self) -> float:
        """What the spool adds at c=1: the gateway against the same gateway without it."""
        return (self.runs["c1_gateway"].p50_us - self.runs["c1_nospool"].p50_us) / 1000

    def checks(self) -> dict[str, tuple[str, str, bool]]:
        rps = self.runs["cN_gateway"].rps
        features = self.feature_checks() if "cN_features" in self.runs else {}
        if "c1_nospool" in self.runs:
            added = self.spool_added_p50_ms
            features["spool added p50 c=1"] = (
                f"{added:.3f} ms",
                f"<= {TARGET_SPOOL_ADDED_P50_MS} ms",
                added <= TARGET_SPOOL_ADDED_P50_MS,
            )
        return features | {
            "added p50 at c=1": (
                f"{self.added_p50_ms:.3f} ms",
                f"<= {TARGET_ADDED_P50_MS} ms",
                self.added_p50_ms <= TARGET_ADDED_P50_MS,
            ),
            f"req/s at c={self.connections}": (
                f"{rps:,.0f}",
                f">= {TARGET_RPS_C32:,.0f}",
                rps >= TARGET_RPS_C32,
            ),
            "logs lost": (f"{self.lost}", "0", self.lost == 0),
        }

    def feature_checks(self) -> dict[str, tuple[str, str, bool]]:
        r, c = self.runs, self.connections
        plain_added = self.added_p50_ms
        hit_added, idle_added = self.added_ms("c1_cached"), self.added_ms("c1_features")
        hit_rps, idle_rps, plain_rps = r["cN_cached"].rps, r["cN_features"].rps, r["cN_gateway"].rps
        idle_share = idle_rps / plain_rps
        # Within 10 %: of the plain added latency, or of the 0.5 ms budget when that is larger
        # (a few µs on a 0.3 ms figure is noise, not a regression).
        idle_limit = plain_added + (1 - FEATURES_SHARE) * max(plain_added, TARGET_ADDED_P50_MS)
        return {
            "hit added p50 c=1": (
                f"{hit_added:.3f} ms",
                f"<= {plain_added:.3f} ms",
                hit_added <= plain_added,
            ),
            f"hit req/s c={c}": (f"{hit_rps:,.0f}", f">= {plain_rps:,.0f}", hit_rps >= plain_rps),
            "idle features p50": (
                f"{idle_added:.3f} ms",
                f"<= {idle_limit:.3f} ms",
                idle_added <= idle_limit,
            ),
            f"idle share c={c}": (
                f"{idle_share:.1%}",
                f">= {FEATURES_SHARE:.0%}",
                idle_share >= FEATURES_SHARE,
            ),
            "idle features r/s": (
                f"{idle_rps:,.0f}",
                f">= {TARGET_RPS_C32:,.0f}",
                idle_rps >= TARGET_RPS_C32,
            ),
        }

    def print(self) -> None:
        r, c = self.runs, self.connections
        c1d, c1g, cnd, cng = r["c1_direct"], r["c1_gateway"], r["cN_direct"], r["cN_gateway"]
        rows = [
            ("p50 c=1 (ms)", c1d.p50_us / 1000, c1g.p50_us / 1000, f"{self.added_p50_ms:+.3f} ms"),
            ("p99 c=1 (ms)", c1d.p99_us / 1000, c1g.p99_us / 1000, f"{self.added_p99_ms:+.3f} ms"),
            ("req/s c=1", c1d.rps, c1g.rps, f"{c1g.rps / c1d.rps:.1%}"),
            (f"req/s c={c}", cnd.rps, cng.rps, f"{cng.rps / cnd.rps:.1%}"),
            (f"p50 c={c} (ms)", cnd.p50_us / 1000, cng.p50_us / 1000, ""),
            (f"p99 c={c} (ms)", cnd.p99_us / 1000, cng.p99_us / 1000, ""),
            ("CPU µs/req c=1", c1d.cpu_us_per_request("nginx"), c1g.cpu_us_per_request("gateway"), ""),
            (f"CPU µs/req c={c}", cnd.cpu_us_per_request("nginx"), cng.cpu_us_per_request("gateway"), ""),
        ]
        variants = (("cache hit", "c1_cached", "cN_cached"), ("idle features", "c1_features", "cN_features"))
        for label, c1_run, cn_run in variants:
            if cn_run in r:
                one, many = r[c1_run], r[cn_run]
                added = f"{self.added_ms(c1_run):+.3f} ms"
                nginx_cpu, gateway_cpu = cnd.cpu_us_per_request("nginx"), many.cpu_us_per_request("gateway")
                rows += [
                    (f"{label} p50 c=1", c1d.p50_us / 1000, one.p50_us / 1000, added),
                    (f"{label} r/s c={c}", cnd.rps, many.rps, f"{many.rps / cng.rps:.1%} of proxied"),
                    (f"{label} CPU c={c}", nginx_cpu, gateway_cpu, "µs/req"),
                ]
        if "cN_nospool" in r:
            one, many = r["c1_nospool"], r["cN_nospool"]
            rows += [
                ("no spool p50 c=1", c1d.p50_us / 1000, one.p50_us / 1000,
                 f"spool adds {self.spool_added_p50_ms:+.3f} ms"),
                (f"no spool r/s c={c}", cnd.rps, many.rps, f"spool keeps {cng.rps / many.rps:.1%}"),
                (f"no spool CPU c={c}", cnd.cpu_us_per_request("nginx"), many.cpu_us_per_request("baseline"),
                 "µs/req"),
            ]  # fmt: skip
        print(f"\n{'':<22}{'upstream':>12}{'gateway':>12}  {'added / share'}")
        for name, up, gw, extra in rows:
            fmt = ",.0f" if any(w in name for w in ("req/s", "r/s", "CPU")) else ".3f"
            print(f"{name:<22}{up:>12{fmt}}{gw:>12{fmt}}  {extra}")
        logs = self.logs
        print(
            f"\ngateway: {self.sent:,} requests sent by wrk (warm-up included), {self.answered:,} answered, "
            f"{self.failed} failed, {self.forwarded:,} forwarded to the upstream\n"
            f"writer:  {logs['enqueued']:,} enqueued, {logs['written']:,} written, "
            f"{logs['dropped']} dropped, {logs['waited_for_space']} waits for queue space\n"
            f"db:      {self.rows:,} rows in logged_calls after graceful shutdown\n"
        )
        if self.others_load > 0.2:
            print(
                f"note: other processes used {self.others_load:.0%} of a core on average during the runs; "
                "timings on this machine are shared with them\n"
            )
        for name, (value, target, ok) in self.checks().items():
            print(f"{name:<22}{value:>12}   target {target:<12} {'PASS' if ok else 'FAIL'}")

    def as_json(self) -> dict[str, object]:
        return {
            "runs": {k: vars(v) | {"rps": v.rps} for k, v in self.runs.items()},
            "sent": self.sent,
            "answered": self.answered,
            "failed": self.failed,
            "forwarded": self.forwarded,
            "logs": self.logs,
            "rows": self.rows,
            "added_p50_ms": self.added_p50_ms,
            "added_p99_ms": self.added_p99_ms,
            "others_load": self.others_load,
            "checks": {k: {"value": v, "target": t, "ok": ok} for k, (v, t, ok) in self.checks().items()},
        }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per target")
    p.add_argument("--connections", type=int, default=32, help="concurrency of the throughput runs")
    p.add_argument("--threads", type=int, default=2, help="wrk threads for the throughput runs")
    p.add_argument(
        "--cpus",
        type=lambda v: {int(c) for c in v.split(",")},
        help="pin nginx, the gateway and wrk to these CPUs, e.g. 0 (unset: the OS schedules them)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        help="py-spy record the gateway at c=N: .svg flame graph, .json speedscope, else collapsed stacks",
    )
    p.add_argument("--profile-gil", action="store_true", help="profile only the thread holding the GIL")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    p.add_argument("--no-features", action="store_true", help="skip the cache-hit and idle-feature runs")
    p.add_argument(
        "--no-spool-compare",
        action="store_true",
        help="skip the runs of a second gateway without the log spool",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return p.parse_args()


def measure_all(args: argparse.Namespace, tmp: Path, script: Path) -> Report:  # noqa: C901
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(nginx(tmp))
        gw = stack.enter_context(gateway(tmp, upstream.for_gateway, tmp / "gateway.log"))
        direct = f"{upstream.direct}/v1/chat/completions"
        proxied = f"{gw.base}/v1/chat/completions"
        print(f"upstream {direct}\ngateway  {proxied} (SQLite log: {gw.db})", flush=True)
        gateway_runs: list[WrkResult] = []
        servers = {"gateway": gw.proc.pid, "nginx": upstream.pid}
        unspooled = ""
        if not args.no_spool_compare:  # the same gateway without the spool, its own home
            baseline = stack.enter_context(
                # The upstream's uncounted port: `forwarded` counts the measured gateway's calls.
                gateway(tmp, upstream.direct, tmp / "baseline.log", home_name="home-nospool",
                        extra={"TUNEPIPE_LOG_SPOOL": "false"})
            )  # fmt: skip
            unspooled = f"{baseline.base}/v1/chat/completions"
            servers["baseline"] = baseline.proc.pid

        def measure(
            name: str, url: str, connections: int, threads: int, duration_s: float, lua: Path = script
        ) -> WrkResult:
            r = wrk(url, lua, connections=connections, threads=threads, duration_s=duration_s,
                    servers=servers)  # fmt: skip
            if url == proxied:
                gateway_runs.append(r)
            cpu = "  ".join(f"{k} {v / duration_s:4.0%}" for k, v in r.cpu_s.items())
            per_request = f" = {r.cpu_us_per_request('gateway'):.0f} µs/request" if url == proxied else ""
            print(
                f"  {name:<17} c={connections:<3} {r.rps:9,.0f} req/s  p50 {r.p50_us / 1000:7.3f} ms"
                f"  p99 {r.p99_us / 1000:7.3f} ms  errors {r.errors + r.non2xx}  CPU: {cpu}{per_request}",
                flush=True,
            )
            return r

        c, t, d = args.connections, args.threads, args.duration
        features = not args.no_features
        if features:  # set up first: nothing here touches the plain requests (another key, model)
            limited = enable_features(gw, tmp)
            cached = wrk_script(tmp / "cached.lua", API_KEY, headers={"op-cache": "readWrite"})
            idle = wrk_script(tmp / "idle.lua", limited, model=FEATURES_MODEL)
        if args.warmup > 0:
            measure("warm-up upstream", direct, c, t, args.warmup)
            measure("warm-up gateway", proxied, c, t, args.warmup)
            if unspooled:
                measure("warm-up no spool", unspooled, c, t, args.warmup)
            if features:
                measure("warm-up features", proxied, c, t, args.warmup, idle)
        # Each feature run right after the plain run it is compared with: the log table grows
        # through the bench, and a run late in it writes into a bigger one.
        runs = {
            "c1_direct": measure("upstream", direct, 1, 1, d),
            "c1_gateway": measure("gateway", proxied, 1, 1, d),
        }
        if unspooled:
            runs["c1_nospool"] = measure("gateway, no spool", unspooled, 1, 1, d)
        if features:
            runs["c1_features"] = measure("idle features", proxied, 1, 1, d, idle)
            runs["c1_cached"] = measure("cache hit", proxied, 1, 1, d, cached)
        runs["cN_direct"] = measure("upstream", direct, c, t, d)
        with profiling(gw.proc.pid, args.profile, d, gil=args.profile_gil):
            runs["cN_gateway"] = measure("gateway", proxied, c, t, d)
        if unspooled:
            runs["cN_nospool"] = measure("gateway, no spool", unspooled, c, t, d)
        if features:
            runs["cN_features"] = measure("idle features", proxied, c, t, d, idle)
            runs["cN_cached"] = measure("cache hit", proxied, c, t, d, cached)
        logs = gw.settle()
        code = stop(gw.proc, signal.SIGTERM, 120)
        # uvicorn re-raises the signal it shut down on, so SIGTERM is a clean exit too.
        if code not in (0, -signal.SIGTERM):
            raise RuntimeError(f"the gateway exited with {code}; see {tmp / 'gateway.log'}")
    return Report(c, runs, gateway_runs, logs, upstream.forwarded(), count_rows(gw.db))


def main() -> int:
    args = parse_args()
    needed = ["nginx", "wrk"] + (["py-spy"] if args.profile else [])
    if missing := [tool for tool in needed if tool_path(tool) is None]:
        print(
            f"missing: {', '.join(missing)}. Install, e.g. on Debian/Ubuntu:\n"
            "    apt-get install -y nginx-light wrk        # and: .venv/bin/pip install py-spy",
            file=sys.stderr,
        )
        return 2
    if args.cpus:
        os.sched_setaffinity(0, args.cpus)  # inherited by every process started from here
    tmp = Path(tempfile.mkdtemp(prefix="tunepipe-bench-"))
    script = tmp / "chat.lua"
    wrk_script(script, API_KEY)
    try:
        report = measure_all(args, tmp, script)
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        print(f"bench failed: {exc} (files kept in {tmp})", file=sys.stderr)
        return 2
    report.print()
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2))
    if args.keep:
        print(f"\nfiles kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if report.failed:
        print(f"setup problem: {report.failed} requests failed", file=sys.stderr)
        return 2
    return 1 if args.strict and not all(ok for _, _, ok in report.checks().values()) else 0


if __name__ == "__main__":
    sys.exit(main())
