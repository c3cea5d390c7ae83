"""Regenerate docs/reference/{cli,settings}.md from the code (``make docs``).

``tests/test_docs_reference.py`` fails when the committed files differ from what this prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import AliasChoices

from tunepipe.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"


def settings_markdown() -> str:
    lines = [
        "# Settings reference",
        "",
        "Generated from `tunepipe.settings.Settings` by `make docs`; do not edit by hand.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = (
            [str(a) for a in alias.choices]
            if isinstance(alias, AliasChoices)
            else [f"TUNEPIPE_{name.upper()}"]
        )
        default = "" if field.default is None else f"`{field.default}`"
        lines.append(f"| {' / '.join(f'`{n}`' for n in names)} | {default} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def cli_markdown() -> str:
    typer = Path(sys.executable).with_name("typer")
    out = subprocess.run(
        [str(typer), "tunepipe.cli.main", "utils", "docs", "--name", "tunepipe", "--title", "CLI reference"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    ).stdout
    return out.rstrip("\n") + "\n"


def main() -> None:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    (REFERENCE / "settings.md").write_text(settings_markdown())
    (REFERENCE / "cli.md").write_text(cli_markdown())


if __name__ == "__main__":
    main()
