"""Write ``constraints.txt`` from what a virtualenv has installed (``make lock`` calls it).

Every distribution is pinned to its exact version, pip included, and tunepipe itself is left
out. Local version labels are dropped (``torch==2.13.0+cpu`` becomes ``torch==2.13.0``), so the
same file serves a CPU and a CUDA build of the same release.

Usage: ``python scripts/write_constraints.py <venv>/bin/pip constraints.txt``
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEADER = """\
# Exact versions the test suite passed with; `make serve`, `make test` and the install smoke test
# install with `pip install -c constraints.txt`. pyproject.toml keeps ranges for library users.
# Regenerate with `make lock`, then run `make test` (docs/dependencies.md).
"""
SKIP = {"tunepipe", "setuptools", "wheel"}


def main(pip: str, out: str) -> None:
    frozen = subprocess.run(
        [pip, "freeze", "--all", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    pins = []
    for line in frozen.splitlines():
        name, sep, version = line.partition("==")
        if not sep or name.lower() in SKIP:
            continue
        pins.append(f"{name}=={version.split('+')[0]}")
    Path(out).write_text(HEADER + "\n".join(sorted(pins, key=str.lower)) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
