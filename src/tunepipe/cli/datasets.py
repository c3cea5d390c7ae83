"""``tunepipe datasets``: create and list datasets, upload and export JSONL files (spec D).

Upload is the API's all-or-nothing two-pass upload (:mod:`tunepipe.services.datasets.upload`),
with a progress bar per pass over the file's bytes; export shows entries written. Progress goes
to stderr, so ``export`` without ``-o`` can pipe clean JSONL on stdout.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json, progress_console
from tunepipe.domain.datasets import Dataset
from tunepipe.protocol.datasets import dataset_view
from tunepipe.protocol.logs import iso
from tunepipe.services.container import Container
from tunepipe.services.datasets.upload import UploadResult

datasets_app = typer.Typer(
    help="Datasets: create, list, and JSONL upload/export (OpenPipe's format).", no_args_is_help=True
)


@datasets_app.command("create")
def datasets_create(
    name: str,
    train_ratio: Annotated[
        float | None, typer.Option("--train-ratio", min=0.01, max=1.0, help="Share of TRAIN (default 0.9).")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Create a dataset and print its id."""

    async def run(c: Container) -> Dataset:
        return await c.datasets.create(await c.projects.operator(project), name, train_ratio)

    ds = call(run)
    console.print(f"Dataset [bold]{ds.name}[/bold] created: {ds.id}")


@datasets_app.command("list")
def datasets_list(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List the project's datasets, newest first."""

    async def run(c: Container) -> list[Dataset]:
        return await c.datasets.all(await c.projects.operator(project))

    datasets = call(run)
    if as_json:
        print_json(json_list([dataset_view(ds) for ds in datasets]))
        return
    table = Table("name", "entries", "train ratio", "created")
    table.add_column("id", no_wrap=True, min_width=36)
    for ds in datasets:
        table.add_row(ds.name, str(ds.entry_count), f"{ds.train_ratio:g}", iso(ds.created_at), ds.id)
    console.print(table)


def _bytes_progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=progress_console,
    )


@datasets_app.command("upload")
def datasets_upload(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A JSONL file.")],
    project: ProjectOpt = None,
) -> None:
    """Upload a JSONL file, all or nothing: every line is checked before any is imported."""
    size = file.stat().st_size

    async def run(c: Container) -> tuple[Dataset, UploadResult]:
        principal = await c.projects.operator(project)
        ds = await c.datasets.get(principal, dataset_id)
        with file.open("rb") as f, _bytes_progress() as progress:
            check = progress.add_task("Checking", total=size)
            insert: list[TaskID] = []  # shown only once the check has passed

            def on_insert(n: int) -> None:
                if not insert:
                    insert.append(progress.add_task("Importing", total=size))
                progress.advance(insert[0], n)

            result = await c.datasets.upload(
                principal, ds.id, f, on_check=lambda n: progress.advance(check, n), on_insert=on_insert
            )
        return ds, result

    ds, result = call(run)
    if result.error_count:
        table = Table("line", "error")
        for line, message in result.errors:
            table.add_row(str(line), message)
        console.print(table)
        shown = "" if len(result.errors) == result.error_count else f" (first {len(result.errors)} shown)"
        console.print(f"[red]{result.error_count} invalid line(s){shown}; nothing imported.[/red]")
        raise typer.Exit(code=1)
    console.print(f"{result.entries_created} entries imported into {ds.name} ({ds.id}).")


@datasets_app.command("export")
def datasets_export(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    include_split: Annotated[
        bool, typer.Option("--include-split/--no-include-split", help="Write each entry's split.")
    ] = True,
    project: ProjectOpt = None,
) -> None:
    """Export the dataset as JSONL (re-importable as is)."""

    async def run(c: Container) -> int:
        principal = await c.projects.operator(project)
        ds = await c.datasets.get(principal, dataset_id)
        lines = c.datasets.export_lines(principal, ds.id, include_split=include_split)
        return await asyncio.to_thread(_write, lines, ds.entry_count, output)

    written = call(run)
    if output:
        console.print(f"{written} entries written to {output}.")


def _write(lines: Iterator[bytes], total: int, output: Path | None) -> int:
    columns = (TextColumn("Exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    sink: AbstractContextManager[IO[bytes]] = output.open("wb") if output else nullcontext(sys.stdout.buffer)
    written = 0
    with sink as out, Progress(*columns, console=progress_console) as progress:
        task = progress.add_task("export", total=total)
        for line in lines:
            out.write(line)
            written += 1
            progress.advance(task)
        out.flush()
    return written
