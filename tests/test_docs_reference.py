"""The generated references in docs/reference match the code (regenerate with `make docs`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_reference_current() -> None:
    expected = _generator().settings_markdown()
    assert (ROOT / "docs/reference/settings.md").read_text() == expected, "run `make docs`"


def test_cli_reference_current() -> None:
    expected = _generator().cli_markdown()
    assert (ROOT / "docs/reference/cli.md").read_text() == expected, "run `make docs`"
