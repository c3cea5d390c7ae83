"""Evaluation pipeline: does it overlap generation and judging, and is its memory flat?

One run starts the fake provider (``tests/fakes/provider.py``) and, for each size, a fresh
``tunepipe serve`` (SQLite in a throw-away home, ``TUNEPIPE_EVAL_CONCURRENCY`` set to
``--concurrency``). It uploads a dataset of N TEST entries (distinct "Maria is 34 and lives in
Lisbon." sentences) and runs a head-to-head eval of three models that answer differently, each
with ``--latency-ms`` of upstream latency, judged by a judge with the same latency:

* ``slow-50-teacher-extract`` answers the JSON object the judge prefers,
* ``slow-50-gpt-4o-mini`` echoes the sentence,
* ``slow-50-judge-polite``, asked a plain question, answers a short verdict sentence (a third
  output unlike the other two, so that no pair ties without a judge call),
* ``slow-50-judge-json`` judges every pair (three judge calls an entry).

The upstream calls are counted from the fake's request log, cleared before each eval. Every
call passes one semaphore of ``concurrency`` slots, so no schedule beats
``calls x latency / concurrency`` (the ideal); a pipeline that keeps every slot busy, judging
an entry while others are generated, stays close to it (target: at most 1.5x); one that waits
between stages (a page, an entry) or starves its workers does not.
The serial time (``calls x latency``) is printed for scale. Wall time runs from ``POST
/api/v1/evals`` until ``GET /api/v1/evals/{id}`` says COMPLETE (polled every 20 ms); the job's
own run time (its ``started_at`` to ``finished_at``) is printed beside it. ``--poll job`` polls
``GET /api/v1/jobs/{id}`` instead, which leaves out what the eval endpoint costs the server (it
summarises every judgement so far on each read).

Memory: the server's ``VmRSS`` after start-up and just before the eval, and its ``VmHWM`` (peak
RSS) when the eval is complete, from ``/proc/<pid>/status``; the eval's growth is the peak less
the RSS before it. SQLite's page cache (up to 2 MiB a pooled connection) fills as the database
grows and counts in the growth: bounded, but visible up to about a thousand entries. So flat
means: doubling the entries from the second largest size to the largest (1,000 to 2,000 by
default) adds at most half again to the growth (target: at most 1.5x); a pipeline that held
the eval in memory would double it.

    .venv/bin/python bench/evals.py [--sizes 200,1000,2000] [--concurrency 8] [--latency-ms 50]

Not a test: it prints a table and a verdict per target, and exits non-zero only when the setup
breaks (a server that does not start, an eval that errs or does not finish). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from conftest import FakeProvider, _start, base_env, free_port  # noqa: E402
from fakes.provider import extract_person, running_fake_provider  # noqa: E402

NAMES = ("Maria", "Jonas", "Aiko", "Pedro", "Fatima", "Lars", "Chen", "Olga", "Kwame", "Ines")
CITIES = ("Lisbon", "Oslo", "Kyoto", "Lima", "Cairo", "Bergen", "Dublin", "Quito", "Accra", "Porto")
TARGET_WALL = 1.5
TARGET_FLAT = 1.5
PER_CALL = 100  # entries a POST /datasets/{id}/entries takes


def sentences(n: int) -> list[str]:
    """``n`` distinct sentences: every name, city and age from 18 before any repeats."""
    combos = itertools.product(range(18, 18 + n // 100 + 1), CITIES, NAMES)
    return [f"{name} is {age} and lives in {city}." for age, city, name in itertools.islice(combos, n)]


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def seconds_between(start: str | None, end: str | None) -> float:
    if not start or not end:
        return float("nan")
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


@dataclass
class Run:
    entries: int
    generated: int
    judged: int
    wall_s: float
    job_s: float
    startup_kib: int
    before_kib: int
    peak_kib: int
    eval: dict[str, Any]

    @property
    def calls(self) -> int:
        return self.generated + self.judged

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.before_kib) / 1024


def upload(http: httpx.Client, n: int) -> str:
    dataset = http.post("/datasets", json={"name": f"eval-bench-{n}"})
    dataset.raise_for_status()
    dataset_id: str = dataset.json()["id"]
    texts = sentences(n)
    for start in range(0, n, PER_CALL):
        entries = [
            {
                "messages": [
                    {"role": "user", "content": t},
                    {"role": "assistant", "content": extract_person(t)},
                ],
                "split": "TEST",
            }
            for t in texts[start : start + PER_CALL]
        ]
        r = http.post(f"/datasets/{dataset_id}/entries", json={"entries": entries})
        r.raise_for_status()
        assert r.json()["entries_created"] == len(entries), r.text
    return dataset_id


def evaluate(fake: FakeProvider, n: int, args: argparse.Namespace, work: Path) -> Run:
    """One eval of ``n`` entries in a fresh server; its calls, times and memory."""
    home = work / f"home-{n}"
    home.mkdir()
    env = base_env(home, fake, None)
    env["TUNEPIPE_API_KEY"] = key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    env["TUNEPIPE_EVAL_CONCURRENCY"] = str(args.concurrency)
    port = free_port()
    proc = _start(env, port)
    try:
        startup = kib(proc.pid, "VmRSS")
        http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        dataset_id = upload(http, n)
        slow = f"slow-{args.latency_ms}"
        models = [f"{slow}-teacher-extract", f"{slow}-gpt-4o-mini", f"{slow}-judge-polite"]
        body = {
            "name": f"bench {n}",
            "dataset_id": dataset_id,
            "type": "head_to_head",
            "models": models,
            "judge_model": f"{slow}-judge-json",
        }
        fake.clear()
        before = kib(proc.pid, "VmRSS")
        started = time.monotonic()
        created = http.post("/evals", json=body)
        created.raise_for_status()
        eval_id, job_id = created.json()["id"], created.json()["job_id"]
        deadline = started + args.timeout_s
        path = f"/evals/{eval_id}" if args.poll == "eval" else f"/jobs/{job_id}"
        while (status := http.get(path).json()["status"]) not in ("COMPLETE", "DONE", "ERROR", "CANCELLED"):
            if time.monotonic() > deadline:
                raise SystemExit(f"eval of {n} entries still {status} after {args.timeout_s} s")
            time.sleep(0.02)
        wall = time.monotonic() - started
        peak = kib(proc.pid, "VmHWM")
        ev = http.get(f"/evals/{eval_id}").json()
        if ev["status"] != "COMPLETE":
            raise SystemExit(f"eval of {n} entries failed: {ev['progress']}")
        job = http.get(f"/jobs/{job_id}").json()
    finally:
        proc.terminate()
        proc.wait(60)
    calls = [r for r in fake.requests() if r["path"].endswith("/chat/completions")]
    judged = sum(1 for r in calls if r["body"]["model"] == body["judge_model"])
    return Run(
        n,
        len(calls) - judged,
        judged,
        wall,
        seconds_between(job.get("started_at"), job.get("finished_at")),
        startup,
        before,
        peak,
        ev,
    )


def report(runs: list[Run], args: argparse.Namespace) -> bool:
    latency = args.latency_ms / 1000
    print(
        f"\nconcurrency {args.concurrency}, {args.latency_ms} ms an upstream call, polling /{args.poll}s; "
        "RSS in MiB of the server process\n"
    )
    head = ("entries", "gen", "judge", "ideal s", "serial s", "wall s", "job s", "wall/ideal")
    head += ("start RSS", "pre-eval", "peak", "eval +RSS")
    print("  ".join(f"{h:>10}" for h in head))
    for r in runs:
        ideal = r.calls * latency / args.concurrency
        row = (r.entries, r.generated, r.judged, f"{ideal:.2f}", f"{r.calls * latency:.1f}")
        row += (f"{r.wall_s:.2f}", f"{r.job_s:.2f}", f"{r.wall_s / ideal:.2f}x")
        row += (f"{r.startup_kib / 1024:.0f}", f"{r.before_kib / 1024:.0f}", f"{r.peak_kib / 1024:.0f}")
        row += (f"{r.growth_mib:.1f}",)
        print("  ".join(f"{c!s:>10}" for c in row))
    last = runs[-1]
    print(f"\nresults at {last.entries} entries (judge {last.eval['judge_model']}):")
    for m in last.eval["results"]["models"]:
        print(
            f"  {m['model']:<28} score {m['score']:.3f}  wins {m['wins']:>5}  ties {m['ties']:>5}"
            f"  losses {m['losses']:>5}  errors {m['errors']}"
        )
    ratios = [r.wall_s / (r.calls * latency / args.concurrency) for r in runs]
    overlap = all(x <= TARGET_WALL for x in ratios)
    print(
        f"\nwall / ideal: {', '.join(f'{x:.2f}x' for x in ratios)} (target <= {TARGET_WALL}); "
        f"serial / ideal: {args.concurrency}x"
    )
    flat = True
    if len(runs) > 1:
        small, large = runs[-2], runs[-1]
        growth = large.growth_mib / max(small.growth_mib, 1.0)  # under 1 MiB is noise
        flat = growth <= TARGET_FLAT
        print(
            f"eval RSS growth at {large.entries} / at {small.entries} entries: {growth:.2f}x "
            f"({large.growth_mib:.1f} / {small.growth_mib:.1f} MiB; target <= {TARGET_FLAT})"
        )
    best = last.eval["results"]["models"][0]["model"].endswith("teacher-extract")
    print(f"teacher-extract wins: {'yes' if best else 'NO'}")
    met = overlap and flat and best
    print("target met" if met else "target NOT met")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200,1000,2000", help="entries per eval, comma-separated")
    parser.add_argument("--concurrency", type=int, default=8, help="TUNEPIPE_EVAL_CONCURRENCY")
    parser.add_argument("--latency-ms", type=int, default=50, help="latency of every upstream call")
    parser.add_argument(
        "--poll",
        choices=("eval", "job"),
        default="eval",
        help="what to poll for completion: GET /evals/{id} (summarises every judgement so far) or /jobs/{id}",
    )
    parser.add_argument("--timeout-s", type=float, default=600, help="give up on an eval after this")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="tunepipe-bench-evals-"))
    runs = []
    try:
        with running_fake_provider() as fake_url:
            fake = FakeProvider(fake_url)
            for n in sizes:
                runs.append(evaluate(fake, n, args, work))
                print(f"{n} entries: {runs[-1].wall_s:.2f} s", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(runs, args)


if __name__ == "__main__":
    main()
