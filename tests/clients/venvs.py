"""Client environments that cannot share the test virtualenv: a Python virtualenv per pinned
requirements file and ``node_modules`` per npm lockfile, each built once and cached under
``.cache/clients/<name>-<hash of its pins>``, and the way a client script runs in one.

A cache entry is built beside its final place and moved there whole, so a concurrent or
interrupted build never leaves a half-installed environment behind the cache key. The move
leaves console scripts' shebangs naming the build directory, so commands run as
``python -m <module>``. Tests are skipped (never failed) only when the package registry cannot
be reached.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "clients"

_UNREACHABLE = (
    "Could not find a version",
    "No matching distribution",
    "NewConnectionError",
    "Network is unreachable",
    "ENOTFOUND",
    "ECONNREFUSED",
    "EAI_AGAIN",
    "ETIMEDOUT",
)


def _cached(name: str, pins: Sequence[Path], build: Callable[[Path], None]) -> Path:
    """The cache directory for ``pins`` (their bytes name it), built by ``build`` on first use."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in pins)).hexdigest()[:16]
    target = CACHE / f"{name}-{digest}"
    if (target / ".complete").exists():
        return target
    building = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        build(building)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    (building / ".complete").touch()
    try:
        building.rename(target)
    except OSError:  # another run finished first: use its environment
        shutil.rmtree(building, ignore_errors=True)
    return target


def _checked(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    if any(marker in output for marker in _UNREACHABLE):
        pytest.skip(f"the package registry is unreachable for {what}: {done.stderr.strip()[-300:]}")
    raise AssertionError(f"{what} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def python_env(name: str, requirements: Path) -> Path:
    """The interpreter of a virtualenv with exactly ``requirements`` installed."""

    def build(venv: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        # A full freeze: every pin is listed, so the resolver has nothing to add.
        done = subprocess.run(
            [*pip, "--no-deps", "-r", str(requirements)], capture_output=True, text=True, timeout=1200
        )
        _checked(done, f"pip install -r {requirements.name}")

    return _cached(name, [requirements], build) / "bin" / "python"


def node_modules(name: str, package_dir: Path) -> Path:
    """``node_modules`` installed by ``npm ci`` from the lockfile in ``package_dir``."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    pins = [package_dir / "package.json", package_dir / "package-lock.json"]

    def build(where: Path) -> None:
        for pin in pins:
            shutil.copy(pin, where / pin.name)
        done = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=600,
        )
        _checked(done, f"npm ci in {package_dir.name}")

    return _cached(name, pins, build) / "node_modules"


def run_json(
    command: Sequence[str | Path], *, env: dict[str, str] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Run a client script; the last line it prints is the JSON object of what it saw."""
    done = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines, f"the client printed nothing; stderr:\n{done.stderr[-4000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    return out
