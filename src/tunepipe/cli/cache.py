"""``tunepipe cache``: what the response cache (``op-cache``) holds for a project, and clearing it.

The commands go to whichever store the servers use (the database, or Redis when
``TUNEPIPE_REDIS_URL`` is set), so they see and clear what the servers see; the same as
``GET``/``DELETE /api/v1/cache``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json
from tunepipe.services.container import Container
from tunepipe.stores.responses import CacheStats

cache_app = typer.Typer(
    help="The response cache (op-cache): stored answers per model, and clearing them.", no_args_is_help=True
)


@cache_app.command("stats")
def cache_stats(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Live (unexpired) answers per model, with the bytes they take (compressed)."""

    async def run(c: Container) -> list[CacheStats]:
        return await c.cache.stats(await c.projects.operator(project))

    stats = call(run)
    if as_json:
        print_json(json_list([asdict(s) for s in stats]))
        return
    table = Table("model", "entries", "bytes")
    for s in stats:
        table.add_row(s.model, str(s.entries), str(s.bytes))
    console.print(table)
    console.print(f"{sum(s.entries for s in stats)} answers, {sum(s.bytes for s in stats)} bytes.")


@cache_app.command("clear")
def cache_clear(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only this model's answers (as requested).")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Delete the project's stored answers (all, or one model's)."""

    async def run(c: Container) -> int:
        return await c.cache.clear(await c.projects.operator(project), model)

    deleted = call(run)
    scope = f" of {model}" if model is not None else ""
    console.print(f"{deleted} cached answers{scope} deleted.")
