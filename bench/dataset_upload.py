"""Dataset JSONL upload: throughput and memory of the streamed, all-or-nothing upload.

Writes JSONL files of 10,000 and 100,000 entries (about 400 bytes a line) into a throw-away
directory, then uploads each into a fresh SQLite dataset through the same code path as
``tunepipe datasets upload`` (:func:`tunepipe.services.dataset_files.upload_jsonl`), each in a
process of its own so that ``ru_maxrss`` is that upload's peak. Printed per run: rows/s over
both passes, the peak RSS, and how much the upload added to the RSS the process had before it.

The baseline, measured in the same run, reads the 100,000-line file into memory and parses it
the naive way (``read()`` + ``orjson.loads`` per line, no database): its peak grows with the
file, while the streamed upload's stays flat (10x the lines, about the same peak).

Usage: ``.venv/bin/python bench/dataset_upload.py [--lines 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

SYSTEM = "You are a support assistant for an online shop. Answer briefly and politely. " * 2


def write_file(path: Path, lines: int) -> int:
    with path.open("wb") as f:
        for i in range(lines):
            entry: dict[str, object] = {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Where is my order #{i}? It has been {i % 17} days."},
                    {"role": "assistant", "content": f"Order #{i} ships tomorrow; tracking follows by mail."},
                ],
                "metadata": {"prompt_id": f"p{i % 100}"},
            }
            if i % 3 == 0:
                entry["split"] = "TEST" if i % 10 == 0 else "TRAIN"
            f.write(orjson.dumps(entry) + b"\n")
    return path.stat().st_size


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_upload(path: Path, home: Path) -> dict[str, float]:
    os.environ["TUNEPIPE_HOME"] = str(home)
    os.environ.pop("TUNEPIPE_DATABASE_URL", None)
    from tunepipe.db import datasets as repo
    from tunepipe.db.projects import ensure_default_project
    from tunepipe.services.container import open_database
    from tunepipe.services.datasets.upload import upload_jsonl
    from tunepipe.settings import Settings

    db = open_database(Settings(), migrate=True)
    project, _ = db.run_sync(ensure_default_project, None, create_key=False)
    ds = db.run_sync(repo.create_dataset, project.id, "bench", 0.9)
    before = peak_rss_mib()
    start = time.perf_counter()
    with path.open("rb") as f:
        result = upload_jsonl(db, ds, f)
    seconds = time.perf_counter() - start
    assert result.error_count == 0 and result.entries_created == result.lines, result
    return {"rows": result.entries_created, "seconds": seconds, "before": before, "peak": peak_rss_mib()}


def child_naive(path: Path) -> dict[str, float]:
    from tunepipe.domain.dataset_entries import parse_entry

    before = peak_rss_mib()
    start = time.perf_counter()
    data = path.read_bytes()
    parsed = [parse_entry(orjson.loads(line)) for line in data.splitlines()]
    seconds = time.perf_counter() - start
    return {"rows": len(parsed), "seconds": seconds, "before": before, "peak": peak_rss_mib()}


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--child", choices=["upload", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "upload":
        print(json.dumps(child_upload(args.file, args.home)))
        return
    if args.child == "naive":
        print(json.dumps(child_naive(args.file)))
        return

    with tempfile.TemporaryDirectory(prefix="tp-bench-upload-") as tmp:
        root = Path(tmp)
        small_lines = max(args.lines // 10, 1)
        rows = []
        for label, lines, child in [
            ("streamed upload", small_lines, "upload"),
            ("streamed upload", args.lines, "upload"),
            ("naive read+parse (baseline)", args.lines, "naive"),
        ]:
            path = root / f"{lines}.jsonl"
            size = path.stat().st_size if path.exists() else write_file(path, lines)
            home = root / f"home-{label[:5]}-{lines}"
            r = run_child("--child", child, "--file", str(path), "--home", str(home))
            rows.append((label, lines, size / 2**20, r))

        print(
            f"{'run':<28} {'lines':>8} {'file MiB':>9} {'s':>7} {'rows/s':>9}"
            f" {'peak RSS MiB':>13} {'+RSS MiB':>9}"
        )
        for label, lines, mib, r in rows:
            print(
                f"{label:<28} {lines:>8} {mib:>9.1f} {r['seconds']:>7.2f} {r['rows'] / r['seconds']:>9.0f}"
                f" {r['peak']:>13.1f} {r['peak'] - r['before']:>9.1f}"
            )
        small, large, naive = (r for _, _, _, r in rows)
        print(
            f"\n10x the lines: streamed peak RSS x{large['peak'] / small['peak']:.2f} "
            f"(+{large['peak'] - small['peak']:.1f} MiB); file {rows[1][2]:.1f} MiB; "
            f"naive baseline peak x{naive['peak'] / large['peak']:.2f} the streamed one"
        )


if __name__ == "__main__":
    main()
