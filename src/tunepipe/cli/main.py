"""The ``tunepipe`` command line: serve, projects, keys, providers, database.

Commands parse arguments, call one service function and print; settings come from
``TUNEPIPE_*`` environment variables, as for the server.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from tunepipe import __version__
from tunepipe.cli.datasets import datasets_app
from tunepipe.cli.models import models_app
from tunepipe.cli.pruning_rules import pruning_rules_app
from tunepipe.errors import TunepipeError
from tunepipe.services import setup
from tunepipe.settings import Settings

app = typer.Typer(help="tunepipe: a self-hosted, OpenPipe-compatible LLM gateway.", no_args_is_help=True)
keys_app = typer.Typer(help="Project API keys.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects.", no_args_is_help=True)
providers_app = typer.Typer(
    help="Provider keys (openai, anthropic, gemini) and external OpenAI/Azure-compatible providers.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
base_models_app = typer.Typer(
    help="Base models the local engine serves as local:<name> (hub ids, directories, GGUF files).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")
app.add_typer(providers_app, name="providers")
app.add_typer(db_app, name="db")
app.add_typer(base_models_app, name="base-models")
app.add_typer(pruning_rules_app, name="pruning-rules")
app.add_typer(datasets_app, name="datasets")
app.add_typer(models_app, name="models")

console = Console()
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="Project name (default: default).")]


def _fail(exc: TunepipeError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(code=1)


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        console.print(__version__)
        raise typer.Exit()


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default TUNEPIPE_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TUNEPIPE_PORT or 8000).")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes (default 1).")] = None,
) -> None:
    """Migrate the database, make sure a project and key exist, and serve the API."""
    import uvicorn

    settings = Settings()
    engine = setup.open_engine(settings)
    boot = setup.bootstrap(settings, engine)
    if boot.new_key:
        key = f"[bold green]{boot.new_key}[/bold green]"
        console.print(f"Project [bold]{boot.project.name}[/bold] API key (shown once): {key}")
    elif settings.api_key:
        console.print(f"Using API key from TUNEPIPE_API_KEY: [bold green]{settings.api_key}[/bold green]")
    else:
        console.print("Project keys exist already; `tunepipe keys create` makes a new one.")
    if settings.default_model:
        _install_default(settings, engine)
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    engine.dispose()
    console.print(f"Serving on http://{host}:{port}/api/v1 (OpenAI base URL; /v1 works too)")
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        "tunepipe.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
    )


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run at most one queued job, then exit.")] = False,
) -> None:
    """Run a training worker without the API: it claims queued training jobs from the database
    the servers use, until interrupted (`serve` runs one too unless TUNEPIPE_WORKER=false)."""
    from tunepipe.cli.worker import run_worker

    logging.basicConfig(level=logging.INFO)
    console.print("Training worker started; Ctrl-C hands a running job back to the queue.")
    run_worker(Settings(), once=once)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the current schema."""
    settings = Settings()
    setup.open_engine(settings).dispose()
    console.print(f"Database is up to date: {settings.effective_database_url.split('@')[-1]}")


@projects_app.command("create")
def projects_create(name: str) -> None:
    """Create a project with a read/write and a read-only key."""
    engine = setup.open_engine(Settings())
    try:
        project, rw, ro = setup.create_project(engine, name)
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Project [bold]{project.name}[/bold] created.")
    console.print(f"read/write key: [green]{rw}[/green]")
    console.print(f"read-only key:  [green]{ro}[/green]")


@projects_app.command("list")
def projects_list() -> None:
    """List projects."""
    table = Table("name", "id")
    for p in setup.list_projects(setup.open_engine(Settings())):
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
    engine = setup.open_engine(Settings())
    try:
        info, plain = setup.create_key(
            engine, setup.project_named(engine, project), read_only=read_only, name=name
        )
    except TunepipeError as exc:
        raise _fail(exc) from exc
    kind = "read-only" if info.read_only else "read/write"
    console.print(f"New {kind} key: [bold green]{plain}[/bold green]")


@keys_app.command("list")
def keys_list(project: ProjectOpt = None) -> None:
    """List keys (prefixes only: keys are stored hashed)."""
    engine = setup.open_engine(Settings())
    try:
        scope = setup.project_named(engine, project) if project else None
    except TunepipeError as exc:
        raise _fail(exc) from exc
    names = {p.id: p.name for p in setup.list_projects(engine)}
    table = Table("project", "prefix", "kind", "name")
    for k in setup.list_keys(engine, scope):
        table.add_row(
            names.get(k.project_id, k.project_id),
            k.key_prefix + "…",
            "read-only" if k.read_only else "read/write",
            k.name,
        )
    console.print(table)


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
    settings = Settings()
    engine = setup.open_engine(settings)
    try:
        setup.provider_service(settings, engine).set_key_sync(
            setup.project_named(engine, project).id, provider, api_key, base_url
        )
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"{provider} key stored (encrypted).")


@providers_app.command("list")
def providers_list(project: ProjectOpt = None) -> None:
    """List external providers and their models."""
    settings = Settings()
    engine = setup.open_engine(settings)
    try:
        providers = setup.provider_service(settings, engine).list_external_sync(
            setup.project_named(engine, project).id
        )
    except TunepipeError as exc:
        raise _fail(exc) from exc
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
    settings = Settings()
    engine = setup.open_engine(settings)
    try:
        setup.provider_service(settings, engine).add_external_sync(
            setup.project_named(engine, project).id,
            slug=slug,
            kind=kind,
            base_url=base_url,
            api_key=api_key,
            api_version=api_version,
        )
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Provider {slug} added: call models as openpipe:{slug}/<model>.")


@providers_app.command("remove")
def providers_remove(slug: str, project: ProjectOpt = None) -> None:
    """Remove an external provider and its models."""
    settings = Settings()
    engine = setup.open_engine(settings)
    try:
        setup.provider_service(settings, engine).remove_external_sync(
            setup.project_named(engine, project).id, slug
        )
    except TunepipeError as exc:
        raise _fail(exc) from exc
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
    settings = Settings()
    engine = setup.open_engine(settings)
    try:
        setup.provider_service(settings, engine).add_model_sync(
            setup.project_named(engine, project).id, provider, model, input_cost, output_cost
        )
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Model openpipe:{provider}/{model} registered.")


@providers_app.command("remove-model")
def providers_remove_model(provider: str, model: str, project: ProjectOpt = None) -> None:
    """Unregister a model of an external provider."""
    settings = Settings()
    engine = setup.open_engine(settings)
    try:
        setup.provider_service(settings, engine).remove_model_sync(
            setup.project_named(engine, project).id, provider, model
        )
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Model openpipe:{provider}/{model} removed.")


def _install_default(settings: Settings, engine: Engine) -> None:
    service = setup.base_model_service(settings, engine)
    try:
        with console.status("Making the default model available (first run only: download + conversion)…"):
            model = service.install_default_sync()
    except Exception as exc:  # the gateway is still useful without a local model
        console.print(f"[yellow]Default model unavailable:[/yellow] {exc}")
        return
    console.print(f"Local model ready: [bold]local:{model.name}[/bold]")


@base_models_app.command("list")
def base_models_list() -> None:
    """List registered base models."""
    settings = Settings()
    table = Table("model", "kind", "path")
    for m in setup.base_model_service(settings, setup.open_engine(settings)).list_sync():
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
    settings = Settings()
    service = setup.base_model_service(settings, setup.open_engine(settings))
    try:
        with console.status(f"Adding {source}…"):
            model = service.add_sync(source, name, base)
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Registered [bold]local:{model.name}[/bold] ({model.kind}) at {model.path}")


@base_models_app.command("remove")
def base_models_remove(name: str) -> None:
    """Unregister a base model (files tunepipe converted or downloaded are deleted)."""
    settings = Settings()
    try:
        setup.base_model_service(settings, setup.open_engine(settings)).remove_sync(name)
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Removed local:{name}")


@base_models_app.command("install-default")
def base_models_install_default() -> None:
    """Download and convert the offline default model, SmolLM2-135M-Instruct (idempotent)."""
    settings = Settings()
    _install_default(settings, setup.open_engine(settings))
