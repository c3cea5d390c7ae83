"""``tunepipe admin``: the keys of the installation's administrators.

An admin key manages what belongs to no project over HTTP (``/projects``, adding and removing
``/base-models``); it reaches no project's data. The shell of the server host needs none: every
``tunepipe`` command already acts as the administrator.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tunepipe.cli.context import JsonOpt, call, console, json_list, print_json
from tunepipe.protocol.logs import iso

admin_app = typer.Typer(help="Admin keys: projects and base models over HTTP.", no_args_is_help=True)


@admin_app.command("create-key")
def admin_create_key(name: Annotated[str, typer.Option(help="A label for the key.")] = "") -> None:
    """Create an admin key (printed once; stored hashed)."""
    _, plain = call(lambda c: c.projects.create_admin_key(name))
    console.print(f"New admin key: [bold green]{plain}[/bold green]")


@admin_app.command("list-keys")
def admin_list_keys(as_json: JsonOpt = False) -> None:
    """List admin keys (prefixes only)."""
    keys = call(lambda c: c.projects.list_admin_keys())
    if as_json:
        print_json(
            json_list(
                [
                    {"id": k.id, "object": "admin_key", "name": k.name, "prefix": k.key_prefix}
                    | {"created_at": iso(k.created_at)}
                    for k in keys
                ]
            )
        )
        return
    table = Table("prefix", "name", "created", "id")
    for k in keys:
        table.add_row(k.key_prefix + "…", k.name, iso(k.created_at), k.id)
    console.print(table)


@admin_app.command("revoke-key")
def admin_revoke_key(
    key: Annotated[
        str, typer.Argument(help="The key's id or prefix, as `tunepipe admin list-keys` shows them.")
    ],
) -> None:
    """Revoke an admin key; running servers refuse it from its next call."""
    info = call(lambda c: c.projects.revoke_admin_key(key))
    console.print(f"Revoked admin key {info.key_prefix}… {info.name} (id {info.id})")
