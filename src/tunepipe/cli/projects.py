"""``tunepipe projects`` and ``tunepipe keys``: projects and their API keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tunepipe.cli.context import ProjectOpt, call, console
from tunepipe.domain.projects import ApiKeyInfo, Project
from tunepipe.services.container import Container

projects_app = typer.Typer(help="Projects.", no_args_is_help=True)
keys_app = typer.Typer(help="Project API keys.", no_args_is_help=True)


@projects_app.command("create")
def projects_create(name: str) -> None:
    """Create a project with a read/write and a read-only key."""
    project, rw, ro = call(lambda c: c.projects.create(name))
    console.print(f"Project [bold]{project.name}[/bold] created.")
    console.print(f"read/write key: [green]{rw}[/green]")
    console.print(f"read-only key:  [green]{ro}[/green]")


@projects_app.command("list")
def projects_list() -> None:
    """List projects."""
    table = Table("name", "id")
    for p in call(lambda c: c.projects.all()):
        table.add_row(p.name, p.id)
    console.print(table)


@keys_app.command("create")
def keys_create(
    project: ProjectOpt = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="A key that can read but never log or write.")
    ] = False,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create an API key (printed once)."""

    async def create(c: Container) -> tuple[ApiKeyInfo, str]:
        return await c.projects.create_key(await c.projects.named(project), read_only=read_only, name=name)

    info, plain = call(create)
    kind = "read-only" if info.read_only else "read/write"
    console.print(f"New {kind} key: [bold green]{plain}[/bold green]")


@keys_app.command("list")
def keys_list(project: ProjectOpt = None) -> None:
    """List keys (prefixes only: keys are stored hashed)."""

    async def load(c: Container) -> tuple[list[Project], list[ApiKeyInfo]]:
        scope = await c.projects.named(project) if project else None
        return await c.projects.all(), await c.projects.list_keys(scope)

    projects, keys = call(load)
    names = {p.id: p.name for p in projects}
    table = Table("project", "prefix", "kind", "name")
    for k in keys:
        table.add_row(
            names.get(k.project_id, k.project_id),
            k.key_prefix + "…",
            "read-only" if k.read_only else "read/write",
            k.name,
        )
    console.print(table)
