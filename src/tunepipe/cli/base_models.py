"""``tunepipe base-models``: the models the local engine serves as ``local:<name>``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tunepipe.cli.context import JsonOpt, call, console, json_list, print_json
from tunepipe.protocol.providers import base_model_view
from tunepipe.services.container import Container

base_models_app = typer.Typer(
    help="Base models the local engine serves as local:<name> (hub ids, directories, GGUF files).",
    no_args_is_help=True,
)


@base_models_app.command("list")
def base_models_list(as_json: JsonOpt = False) -> None:
    """List registered base models (with their paths: the server host's shell is the admin)."""
    models = call(lambda c: c.base_models.all())
    if as_json:
        print_json(json_list([base_model_view(m, admin=True) for m in models]))
        return
    table = Table("model", "kind", "path")
    for m in models:
        table.add_row(f"local:{m.name}", m.kind, m.path)
    console.print(table)


@base_models_app.command("add")
def base_models_add(
    source: Annotated[str, typer.Argument(help="A hub id (org/model), a model directory, or a .gguf file.")],
    name: Annotated[
        str | None, typer.Option(help="Name to serve it under (default: from the source).")
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="For a LoRA adapter directory: its registered base model.")
    ] = None,
) -> None:
    """Register a base model (a GGUF file is converted once; a hub id is downloaded) or a LoRA
    adapter on top of one."""
    with console.status(f"Adding {source}…"):
        model = call(lambda c: c.base_models.add(source, name, base))
    console.print(f"Registered [bold]local:{model.name}[/bold] ({model.kind}) at {model.path}")


@base_models_app.command("remove")
def base_models_remove(name: str) -> None:
    """Unregister a base model (files tunepipe converted or downloaded are deleted)."""
    call(lambda c: c.base_models.remove(name))
    console.print(f"Removed local:{name}")


@base_models_app.command("install-default")
def base_models_install_default() -> None:
    """Download and convert the offline default model, SmolLM2-135M-Instruct (idempotent)."""
    call(install_default)


async def install_default(c: Container) -> None:
    """Make the default model available; the gateway is still useful if that fails."""
    try:
        with console.status("Making the default model available (first run only: download + conversion)…"):
            model = await c.base_models.install_default()
    except Exception as exc:  # no network, no disk space: serve without a local model
        console.print(f"[yellow]Default model unavailable:[/yellow] {exc}")
        return
    console.print(f"Local model ready: [bold]local:{model.name}[/bold]")
