"""``tunepipe moa``: a project's mixture-of-agents configurations, served at
``openpipe:moa-<slug>``. ``moa:<model>`` and OpenPipe's ``openpipe:moa-gpt-4o-v1`` (and
``-gpt-4-turbo-v1``, ``-gpt-4-v1``) need no configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json
from tunepipe.domain.moa import MAX_CANDIDATES, MAX_LAYERS, ProjectMoa, make_config
from tunepipe.protocol.moa import moa_view
from tunepipe.services.container import Container

moa_app = typer.Typer(
    help="Mixture of agents: several models propose, one critiques and writes the answer "
    "(served at openpipe:moa-<slug>).",
    no_args_is_help=True,
)

PromptFile = Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Read the prompt here.")]


@moa_app.command("create")
def moa_create(
    slug: Annotated[str, typer.Argument(help="Served as openpipe:moa-<slug>.")],
    proposer: Annotated[
        list[str], typer.Option("--proposer", help="A model that writes candidates (repeatable, 1-5).")
    ],
    aggregator: Annotated[
        str | None, typer.Option(help="Critiques and writes the answer (default: the first proposer).")
    ] = None,
    candidates: Annotated[
        int | None, typer.Option(min=1, max=MAX_CANDIDATES, help="Candidates per proposer (default 3).")
    ] = None,
    layers: Annotated[
        int | None, typer.Option(min=1, max=MAX_LAYERS, help="Rounds of proposals (default 1).")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(min=0.0, max=2.0, help="Temperature of the candidates (default 0.9).")
    ] = None,
    critique_prompt_file: PromptFile = None,
    synthesis_prompt_file: PromptFile = None,
    project: ProjectOpt = None,
) -> None:
    """Create a configuration."""
    config = make_config(
        proposer,
        aggregator=aggregator,
        candidates=candidates,
        temperature=temperature,
        layers=layers,
        critique_prompt=critique_prompt_file.read_text() if critique_prompt_file else None,
        synthesis_prompt=synthesis_prompt_file.read_text() if synthesis_prompt_file else None,
    )

    async def run(c: Container) -> ProjectMoa:
        return await c.moa.create(await c.projects.operator(project), slug, config)

    created = call(run)
    console.print(f"Created {escape(created.model)}")


@moa_app.command("list")
def moa_list(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List the project's configurations."""

    async def run(c: Container) -> list[ProjectMoa]:
        return await c.moa.list_configs(await c.projects.operator(project))

    configs = call(run)
    if as_json:
        print_json(json_list([moa_view(m) for m in configs]))
        return
    table = Table("model", "proposers", "candidates", "layers", "aggregator")
    for m in configs:
        cfg = m.config
        table.add_row(
            escape(m.model),
            escape(", ".join(cfg.proposers)),
            str(cfg.candidates),
            str(cfg.layers),
            escape(cfg.aggregator),
        )
    console.print(table)


@moa_app.command("show")
def moa_show(slug: str, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Show a configuration, prompts included."""

    async def run(c: Container) -> ProjectMoa:
        return await c.moa.get(await c.projects.operator(project), slug)

    m = call(run)
    if as_json:
        print_json(moa_view(m))
        return
    cfg = m.config
    console.print(f"[bold]{escape(m.model)}[/bold]")
    console.print(f"proposers:   {escape(', '.join(cfg.proposers))}")
    console.print(f"aggregator:  {escape(cfg.aggregator)}")
    console.print(f"candidates:  {cfg.candidates} per proposer, temperature {cfg.temperature}")
    console.print(f"layers:      {cfg.layers}")
    console.print("[bold]critique prompt[/bold]")
    console.print(escape(cfg.critique_prompt))
    console.print("[bold]synthesis prompt[/bold]")
    console.print(escape(cfg.synthesis_prompt))


@moa_app.command("delete")
def moa_delete(slug: str, project: ProjectOpt = None) -> None:
    """Delete a configuration."""

    async def run(c: Container) -> None:
        await c.moa.delete(await c.projects.operator(project), slug)

    call(run)
    console.print(f"Deleted openpipe:moa-{escape(slug)}")
