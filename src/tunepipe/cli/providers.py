"""``tunepipe providers``: a project's provider keys and external OpenAI/Azure-compatible
providers and their models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json
from tunepipe.domain.projects import ExternalProvider
from tunepipe.protocol.providers import provider_view
from tunepipe.services.container import Container

providers_app = typer.Typer(
    help="Provider keys (openai, anthropic, gemini) and external OpenAI/Azure-compatible providers.",
    no_args_is_help=True,
)


async def _project_id(c: Container, project: str | None) -> str:
    return (await c.projects.named(project)).id


@providers_app.command("set-key")
def providers_set_key(
    provider: Annotated[str, typer.Argument(help="openai, anthropic or gemini")],
    api_key: Annotated[str | None, typer.Option("--api-key", help="The provider key.")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Override the provider's base URL.")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Store a provider key for a project (overrides the environment default)."""

    async def run(c: Container) -> None:
        await c.providers.set_key(await _project_id(c, project), provider, api_key, base_url)

    call(run)
    console.print(f"{provider} key stored (encrypted).")


@providers_app.command("list")
def providers_list(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List external providers and their models."""

    async def run(c: Container) -> list[ExternalProvider]:
        return await c.providers.list_external(await _project_id(c, project))

    providers = call(run)
    if as_json:
        print_json(json_list([provider_view(p) for p in providers]))
        return
    table = Table("provider", "kind", "base URL", "models")
    for p in providers:
        models = ", ".join(f"openpipe:{p.slug}/{m.slug}" for m in p.models) or "-"
        table.add_row(p.slug, p.kind, p.base_url, models)
    console.print(table)


@providers_app.command("add")
def providers_add(
    slug: str,
    base_url: Annotated[str, typer.Option("--base-url", help="e.g. http://gpu-box:8000/v1")],
    api_key: Annotated[str | None, typer.Option("--api-key")] = None,
    kind: Annotated[str, typer.Option(help="openai or azure")] = "openai",
    api_version: Annotated[str | None, typer.Option("--api-version", help="Azure api-version.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Register an external OpenAI- or Azure-compatible provider (call it as openpipe:<slug>/<model>)."""

    async def run(c: Container) -> None:
        await c.providers.add_external(
            await _project_id(c, project),
            slug=slug,
            kind=kind,
            base_url=base_url,
            api_key=api_key,
            api_version=api_version,
        )

    call(run)
    console.print(f"Provider {slug} added: call models as openpipe:{slug}/<model>.")


@providers_app.command("remove")
def providers_remove(slug: str, project: ProjectOpt = None) -> None:
    """Remove an external provider and its models."""

    async def run(c: Container) -> None:
        await c.providers.remove_external(await _project_id(c, project), slug)

    call(run)
    console.print(f"Provider {slug} removed.")


@providers_app.command("add-model")
def providers_add_model(
    provider: str,
    model: str,
    input_cost: Annotated[
        float | None, typer.Option("--input-cost", help="USD per million input tokens.")
    ] = None,
    output_cost: Annotated[
        float | None, typer.Option("--output-cost", help="USD per million output tokens.")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Register a model of an external provider, with optional prices."""

    async def run(c: Container) -> None:
        await c.providers.add_model(await _project_id(c, project), provider, model, input_cost, output_cost)

    call(run)
    console.print(f"Model openpipe:{provider}/{model} registered.")


@providers_app.command("remove-model")
def providers_remove_model(provider: str, model: str, project: ProjectOpt = None) -> None:
    """Unregister a model of an external provider."""

    async def run(c: Container) -> None:
        await c.providers.remove_model(await _project_id(c, project), provider, model)

    call(run)
    console.print(f"Model openpipe:{provider}/{model} removed.")
