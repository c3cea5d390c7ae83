"""``tunepipe jobs``: the project's background jobs (training, imports from logs, relabeling):
list them, show one, cancel one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json
from tunepipe.domain.jobs import Job
from tunepipe.protocol.jobs import job_view
from tunepipe.protocol.logs import iso
from tunepipe.services.container import Container

jobs_app = typer.Typer(help="Background jobs: training, imports from logs, relabeling.", no_args_is_help=True)
JobArg = Annotated[str, typer.Argument(help="The job's id.")]


@jobs_app.command("list")
def jobs_list(
    kind: Annotated[list[str] | None, typer.Option("--kind", help="train, import_logs or relabel.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="QUEUED, RUNNING, DONE, ERROR, CANCELLED.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the project's jobs, newest first."""

    async def run(c: Container) -> list[Job]:
        principal = await c.projects.operator(project)
        return await c.jobs.list_jobs(principal, kinds=kind or (), status=status, limit=limit)

    jobs = call(run)
    if as_json:
        print_json(json_list([job_view(job) for job in jobs]))
        return
    # Id, kind and status are what a reader acts on: never cut them (`jobs get` shows the rest).
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("kind", no_wrap=True, min_width=11)
    table.add_column("status", no_wrap=True, min_width=9)
    for name in ("attempt", "stage", "created", "message"):
        table.add_column(name, overflow="fold")
    for job in jobs:
        table.add_row(
            job.id,
            job.kind,
            job.status,
            f"{job.attempts}/{job.max_attempts}",
            str(job.progress.get("stage") or ""),
            iso(job.created_at),
            job.error_message or "",
        )
    console.print(table)


@jobs_app.command("get")
def jobs_get(job_id: JobArg, project: ProjectOpt = None) -> None:
    """Print a job as the API shows it (JSON)."""

    async def run(c: Container) -> Job:
        return await c.jobs.get(await c.projects.operator(project), job_id)

    print_json(job_view(call(run)))


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobArg, project: ProjectOpt = None) -> None:
    """Cancel a job: a queued one at once, a running one by its worker."""

    async def run(c: Container) -> Job:
        return await c.jobs.cancel(await c.projects.operator(project), job_id)

    job = call(run)
    console.print(
        f"Job {job.id} ({job.kind}): {job.status}{' (cancel requested)' if job.cancel_requested else ''}"
    )
