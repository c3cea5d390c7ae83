"""``tunepipe routing``: a project's default fallback chains and retries per model.

The circuit breaker's state lives in each server process, so ``show`` here lists the chains
only; ``GET /api/v1/routing`` on a server also shows which models it is skipping.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, print_json
from tunepipe.domain.routing import FallbackChain
from tunepipe.services.container import Container

routing_app = typer.Typer(
    help="Routing: fallback chains and retries tried when a model fails (429, 5xx, timeouts).",
    no_args_is_help=True,
)


@routing_app.command("show")
def routing_show(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List the project's fallback chains."""

    async def run(c: Container) -> dict[str, Any]:
        return await c.fallbacks.overview(await c.projects.operator(project))

    overview = call(run)
    if as_json:
        print_json({"object": "routing", **overview})
        return
    table = Table("model", "fallbacks, in order", "retries")
    for chain in overview["fallbacks"]:
        retries = "-" if chain["retries"] is None else str(chain["retries"])
        table.add_row(escape(chain["model"]), escape(" → ".join(chain["fallbacks"]) or "-"), retries)
    console.print(table)


@routing_app.command("set")
def routing_set(
    model: str,
    fallback: Annotated[
        list[str] | None,
        typer.Option("--fallback", "-f", help="A model tried after it (repeatable, in order)."),
    ] = None,
    retries: Annotated[
        int | None, typer.Option("--retries", min=0, max=5, help="Retries of each model before the next.")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Set MODEL's default fallback chain and retries (the op-fallback/op-retries headers win)."""

    async def run(c: Container) -> FallbackChain:
        return await c.fallbacks.set(await c.projects.operator(project), model, fallback or [], retries)

    chain = call(run)
    tail = " → ".join(chain.fallbacks) or "no fallback"
    retries = chain.retries if chain.retries is not None else 0
    console.print(f"{escape(chain.model)} → {escape(tail)}; retries: {retries}")


@routing_app.command("remove")
def routing_remove(model: str, project: ProjectOpt = None) -> None:
    """Remove MODEL's fallback chain."""

    async def run(c: Container) -> None:
        await c.fallbacks.delete(await c.projects.operator(project), model)

    call(run)
    console.print(f"Removed the fallback chain of {escape(model)}")
