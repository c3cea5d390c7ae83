"""What every command shares: the consoles, the ``--project`` and ``--json`` options, and running
one use case against the composition root.

Output conventions: tables go to stdout at the terminal's width, and at no fixed width when stdout
is a pipe or a file (Rich would otherwise assume 80 columns and cut ids); progress bars go to
stderr, and only when it is a terminal; ``--json`` prints what the API returns for the same
thing, as plain JSON (no colour, no wrapping).

Commands call the services directly against the database the servers use (no server needed);
the shell of the server host is trusted like a read/write key of the project it names. A
:class:`~tunepipe.errors.TunepipeError` a command raises is printed once, by the entry point
(:func:`tunepipe.cli.main.run`), and the command exits 1.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console

from tunepipe.services.container import Container
from tunepipe.settings import Settings

T = TypeVar("T")

# Wide enough for any row; Rich only pads a table to its content, so short tables stay short.
UNBOUNDED = 10_000


def _width(stream: Any) -> int | None:
    """The terminal's width (Rich's own choice) on a terminal or where ``COLUMNS`` says; else
    unbounded."""
    isatty = getattr(stream, "isatty", None)
    return None if (isatty is not None and isatty()) or "COLUMNS" in os.environ else UNBOUNDED


console = Console(width=_width(sys.stdout))
# Progress bars on stderr, so stdout stays pipeable; redirected, they draw nothing.
progress_console = Console(stderr=True, width=_width(sys.stderr))
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="Project name (default: default).")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON, as the API returns it, instead of a table.")
]


def plain_progress_when_redirected() -> None:
    """No progress bars (tqdm's, Hugging Face's) when stderr is not a terminal: redirected to a
    log, their carriage returns make it unreadable. Set in the environment, so that server worker
    processes inherit it."""
    if not sys.stderr.isatty():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout, for ``jq`` and scripts."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def json_list(items: list[Any]) -> dict[str, Any]:
    """A list in the API's shape."""
    return {"object": "list", "data": items}


def call(fn: Callable[[Container], Awaitable[T]], *, settings: Settings | None = None) -> T:
    """Run ``fn`` with a container for this command (the database migrated first, like ``serve``)."""

    async def main() -> T:
        async with Container.open(settings or Settings(), migrate=True, follow_changes=False) as c:
            return await fn(c)

    return asyncio.run(main())
