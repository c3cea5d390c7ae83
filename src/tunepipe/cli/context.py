"""What every command shares: the consoles, the ``--project`` option, and running one use case
against the composition root.

Commands call the services directly against the database the servers use (no server needed);
the shell of the server host is trusted like a read/write key of the project it names. A
:class:`~tunepipe.errors.TunepipeError` a command raises is printed once, by the entry point
(:func:`tunepipe.cli.main.run`), and the command exits 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from tunepipe.services.container import Container
from tunepipe.settings import Settings

T = TypeVar("T")

console = Console()
progress_console = Console(stderr=True)  # progress bars on stderr: stdout stays pipeable
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="Project name (default: default).")]


def call(fn: Callable[[Container], Awaitable[T]], *, settings: Settings | None = None) -> T:
    """Run ``fn`` with a container for this command (the database migrated first, like ``serve``)."""

    async def main() -> T:
        async with Container.open(settings or Settings(), migrate=True, follow_changes=False) as c:
            return await fn(c)

    return asyncio.run(main())
