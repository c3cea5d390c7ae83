"""The ``tunepipe`` command line: serve, work, and manage projects, keys, providers, base models,
datasets, pruning rules, models, jobs, criteria, evaluations, the response cache, routing
(fallbacks) and mixture-of-agents configurations.

Commands parse arguments, call one use case and print; settings come from ``TUNEPIPE_*``
environment variables, as for the server. :func:`run` is the entry point: the one place a
failed use case becomes a message and exit status 1.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from tunepipe import __version__
from tunepipe.cli.admin import admin_app
from tunepipe.cli.base_models import base_models_app, install_default
from tunepipe.cli.cache import cache_app
from tunepipe.cli.context import call, console, plain_progress_when_redirected
from tunepipe.cli.criteria import criteria_app
from tunepipe.cli.datasets import datasets_app
from tunepipe.cli.evals import evals_app
from tunepipe.cli.jobs import jobs_app
from tunepipe.cli.moa import moa_app
from tunepipe.cli.models import models_app
from tunepipe.cli.network import network_app
from tunepipe.cli.projects import keys_app, projects_app
from tunepipe.cli.providers import providers_app
from tunepipe.cli.pruning_rules import pruning_rules_app
from tunepipe.cli.routing import routing_app
from tunepipe.errors import TunepipeError
from tunepipe.services.container import Container
from tunepipe.settings import Settings

app = typer.Typer(help="tunepipe: a self-hosted, OpenPipe-compatible LLM gateway.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
for sub, name in (
    (keys_app, "keys"),
    (projects_app, "projects"),
    (providers_app, "providers"),
    (db_app, "db"),
    (base_models_app, "base-models"),
    (pruning_rules_app, "pruning-rules"),
    (datasets_app, "datasets"),
    (models_app, "models"),
    (jobs_app, "jobs"),
    (criteria_app, "criteria"),
    (evals_app, "evals"),
    (cache_app, "cache"),
    (routing_app, "routing"),
    (moa_app, "moa"),
    (admin_app, "admin"),
    (network_app, "network"),
):
    app.add_typer(sub, name=name)


def run() -> None:
    """The ``tunepipe`` entry point."""
    try:
        app(prog_name="tunepipe")
    except TunepipeError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise SystemExit(1) from None


def _print_version(value: bool) -> None:
    if value:
        console.print(__version__)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """tunepipe: a self-hosted, OpenPipe-compatible LLM gateway."""


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

    plain_progress_when_redirected()

    settings = Settings()

    async def prepare(c: Container) -> None:
        admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
        boot = await c.projects.bootstrap(settings.api_key, admin_key)
        if admin_key:
            console.print(f"Admin key from TUNEPIPE_ADMIN_KEY registered ({admin_key[:8]}…)")
        if boot.new_key:
            key = f"[bold green]{boot.new_key}[/bold green]"
            console.print(f"Project [bold]{boot.project.name}[/bold] API key (shown once): {key}")
        elif settings.api_key:
            # The operator knows the key; a log file keeping it whole would not need to.
            shown = f"{settings.api_key[:8]}…"
            console.print(f"Using the API key from TUNEPIPE_API_KEY ([bold green]{shown}[/bold green])")
        else:
            console.print("Project keys exist already; `tunepipe keys create` makes a new one.")
        if settings.default_model:
            await install_default(c)

    call(prepare, settings=settings)
    host = host or settings.host
    port = port or settings.port
    console.print(f"Serving on http://{host}:{port}/api/v1 (OpenAI base URL; /v1 works too)")
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        "tunepipe.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
    )


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run at most one queued job, then exit.")] = False,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="Only jobs of this kind (train, import_logs, relabel; repeatable)."),
    ] = None,
) -> None:
    """Run a job worker without the API: it claims queued jobs (training, imports, relabels) from
    the database the servers use, until interrupted (`serve` runs one too unless
    TUNEPIPE_WORKER=false)."""
    from tunepipe.cli.worker import run_worker

    plain_progress_when_redirected()
    logging.basicConfig(level=logging.INFO)
    console.print("Worker started; Ctrl-C hands a running job back to the queue.")
    run_worker(Settings(), once=once, kinds=kind or None)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the current schema."""
    settings = Settings()

    async def nothing(_c: Container) -> None:
        return None

    call(nothing, settings=settings)
    console.print(f"Database is up to date: {settings.effective_database_url.split('@')[-1]}")
