"""``tunepipe projects`` and ``tunepipe keys``: projects and their API keys, with each key's
rate limits.

On the command line a limit of 0 means "no limit" (an option takes a number, so there is no
null to give); an option left out keeps what the key has.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json
from tunepipe.domain.projects import ApiKeyInfo, KeyLimits, Project
from tunepipe.protocol.keys import key_view
from tunepipe.services.container import Container

projects_app = typer.Typer(help="Projects.", no_args_is_help=True)
keys_app = typer.Typer(help="Project API keys.", no_args_is_help=True)

RpmOpt = Annotated[
    int | None, typer.Option("--rpm", min=0, help="Requests per minute (0: no limit).", show_default=False)
]
TpmOpt = Annotated[
    int | None,
    typer.Option(
        "--tpm", min=0, help="Tokens (prompt + completion) per minute (0: no limit).", show_default=False
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--max-concurrency", min=0, help="Requests in flight at once (0: no limit).", show_default=False
    ),
]
KeyProjectOpt = Annotated[
    str | None,
    typer.Option("--project", "-p", help="Look for the key in this project only (default: every project)."),
]


def limits_text(limits: KeyLimits | None) -> str:
    if limits is None or not limits.any:
        return "none"
    parts = [
        f"{limits.rpm} rpm" if limits.rpm else "",
        f"{limits.tpm} tpm" if limits.tpm else "",
        f"{limits.max_concurrency} concurrent" if limits.max_concurrency else "",
    ]
    return ", ".join(p for p in parts if p)


@projects_app.command("create")
def projects_create(name: str) -> None:
    """Create a project with a read/write and a read-only key."""
    project, rw, ro = call(lambda c: c.projects.create(name))
    console.print(f"Project [bold]{project.name}[/bold] created.")
    console.print(f"read/write key: [green]{rw}[/green]")
    console.print(f"read-only key:  [green]{ro}[/green]")


@projects_app.command("list")
def projects_list(as_json: JsonOpt = False) -> None:
    """List projects."""
    projects = call(lambda c: c.projects.all())
    if as_json:
        print_json(json_list([{"id": p.id, "name": p.name} for p in projects]))
        return
    table = Table("name", "id")
    for p in projects:
        table.add_row(p.name, p.id)
    console.print(table)


@projects_app.command("delete")
def projects_delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a project with everything it owns: keys, logs, datasets, fine-tunes, jobs."""
    if not yes:
        typer.confirm(f"Delete project {name!r} and everything it owns?", abort=True)
    project = call(lambda c: c.projects.delete(name))
    console.print(f"Project [bold]{project.name}[/bold] deleted.")


@keys_app.command("create")
def keys_create(
    project: ProjectOpt = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="A key that can read but never log or write.")
    ] = False,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    max_concurrency: ConcurrencyOpt = None,
) -> None:
    """Create an API key (printed once), with rate limits if given."""
    limits = KeyLimits(rpm=rpm or None, tpm=tpm or None, max_concurrency=max_concurrency or None)

    async def create(c: Container) -> tuple[ApiKeyInfo, str]:
        return await c.projects.create_key(
            await c.projects.named(project),
            read_only=read_only,
            name=name,
            limits=limits if limits.any else None,
        )

    info, plain = call(create)
    kind = "read-only" if info.read_only else "read/write"
    console.print(f"New {kind} key: [bold green]{plain}[/bold green]")
    if info.limits is not None:
        console.print(f"Limits: {limits_text(info.limits)}")


@keys_app.command("limits")
def keys_limits(
    key: Annotated[str, typer.Argument(help="The key's id or prefix, as `tunepipe keys list` shows them.")],
    project: KeyProjectOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    max_concurrency: ConcurrencyOpt = None,
) -> None:
    """Show a key's rate limits, or change them: 0 removes a limit, a limit not given stays.

    Running servers apply a change to the key's next call.
    """
    given = {"rpm": rpm, "tpm": tpm, "max_concurrency": max_concurrency}
    changes = {name: value or None for name, value in given.items() if value is not None}

    async def run(c: Container) -> ApiKeyInfo:
        scope = await c.projects.named(project) if project else None
        if not changes:
            return await c.projects.key(scope, key)
        return await c.projects.set_limits(scope, key, changes)

    info = call(run)
    console.print(f"Key {info.key_prefix}… {info.name} (id {info.id})")
    console.print(f"Limits: {limits_text(info.limits)}")


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix, as `tunepipe keys list` shows them.")],
    project: KeyProjectOpt = None,
) -> None:
    """Revoke a key: running servers refuse it from its next call."""

    async def run(c: Container) -> ApiKeyInfo:
        found = await c.projects.key(await c.projects.named(project) if project else None, key)
        owner = next(p for p in await c.projects.all() if p.id == found.project_id)
        return await c.projects.revoke_key(owner, found.id)

    info = call(run)
    console.print(f"Key {info.key_prefix}… {info.name} (id {info.id}) revoked.")


@keys_app.command("list")
def keys_list(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List keys (prefixes only: keys are stored hashed)."""

    async def load(c: Container) -> tuple[list[Project], list[ApiKeyInfo]]:
        scope = await c.projects.named(project) if project else None
        return await c.projects.all(), await c.projects.list_keys(scope)

    projects, keys = call(load)
    names = {p.id: p.name for p in projects}
    if as_json:
        print_json(json_list([key_view(k) | {"project": names.get(k.project_id)} for k in keys]))
        return
    table = Table("project", "prefix", "kind", "name", "limits", "id")
    for k in keys:
        table.add_row(
            names.get(k.project_id, k.project_id),
            k.key_prefix + "…",
            "read-only" if k.read_only else "read/write",
            k.name,
            limits_text(k.limits),
            k.id,
        )
    console.print(table)
