"""``tunepipe models``: train a model from a dataset, follow its training, list, cancel, delete,
and download its adapter or merged weights (spec A.4, B.3).

Like ``tunepipe datasets``, commands call the services directly against the database (no
server needed). Training itself is done by a worker — the one inside ``tunepipe serve``, or
``tunepipe worker`` — that picks the queued job up; ``wait`` follows it by polling the model.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunepipe.db.fine_tunes import FineTune
from tunepipe.db.records import Principal
from tunepipe.domain.fine_tunes import FineTuneStatus
from tunepipe.engine.sources import DEFAULT_MODEL
from tunepipe.errors import TunepipeError
from tunepipe.protocol.models import CreateModelRequest
from tunepipe.services import setup
from tunepipe.services.datasets import DatasetService, iso
from tunepipe.services.fine_tunes import FineTuneService
from tunepipe.services.local_models import LocalModels
from tunepipe.services.pruning import PruningService
from tunepipe.settings import Settings

models_app = typer.Typer(
    help="Fine-tuned models: train one from a dataset, follow it, download it; call it as openpipe:<slug>.",
    no_args_is_help=True,
)

console = Console()
progress_console = Console(stderr=True)
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="Project name (default: default).")]
SlugArg = Annotated[str, typer.Argument(help="The model's slug (openpipe:<slug> works too).")]
FINISHED = (FineTuneStatus.DEPLOYED, FineTuneStatus.ERROR)


def _open(project: str | None) -> tuple[FineTuneService, Principal]:
    settings = Settings()
    engine = setup.open_engine(settings)
    base_models = setup.base_model_service(settings, engine)
    service = FineTuneService(
        settings,
        engine,
        datasets=DatasetService(engine),
        pruning=PruningService(engine),
        base_models=base_models,
        local=LocalModels(settings, base_models),
    )
    # The shell is trusted like a read/write key of the project.
    return service, Principal(project=setup.project_named(engine, project), key_id="cli", read_only=False)


def _fail(exc: TunepipeError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(code=1)


def _training_config(
    base_model: str,
    epochs: float | None,
    lr_multiplier: float | None,
    batch_size: str | None,
    dpo: bool,
    dpo_epochs: float | None,
    beta: float | None,
) -> dict[str, Any]:
    sft: dict[str, Any] = {}
    if epochs is not None:
        sft["num_epochs"] = epochs
    if lr_multiplier is not None:
        sft["learning_rate_multiplier"] = lr_multiplier
    if batch_size is not None:
        sft["batch_size"] = batch_size if batch_size == "auto" else int(batch_size)
    config: dict[str, Any] = {
        "provider": "openpipe",
        "baseModel": base_model,
        "enable_preference_tuning": dpo,
        "sft_hyperparameters": sft,
    }
    preference = {k: v for k, v in (("num_epochs", dpo_epochs), ("training_beta", beta)) if v is not None}
    if preference:
        config["preference_hyperparameters"] = preference
    return config


@models_app.command("create")
def models_create(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id to train on.")],
    slug: Annotated[str, typer.Option("--slug", help="The model's name: call it as openpipe:<slug>.")],
    base_model: Annotated[
        str, typer.Option("--base-model", help="A registered base model, or the slug of a deployed model.")
    ] = DEFAULT_MODEL,
    epochs: Annotated[float | None, typer.Option("--epochs", help="SFT epochs (default: by size).")] = None,
    lr_multiplier: Annotated[
        float | None, typer.Option("--lr-multiplier", help="Times the default learning rate.")
    ] = None,
    batch_size: Annotated[str | None, typer.Option("--batch-size", help="A number, or auto.")] = None,
    dpo: Annotated[bool, typer.Option("--dpo/--no-dpo", help="Preference tuning (DPO) after SFT.")] = False,
    dpo_epochs: Annotated[float | None, typer.Option("--dpo-epochs", help="DPO epochs.")] = None,
    beta: Annotated[float | None, typer.Option("--beta", help="DPO beta.")] = None,
    pruning_rule: Annotated[
        list[str] | None, typer.Option("--pruning-rule", help="Id of a dataset pruning rule (repeatable).")
    ] = None,
    default_temperature: Annotated[
        float | None, typer.Option("--default-temperature", help="Used when a request sets none.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow training until it ends.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Train a model from a dataset's TRAIN entries (queued for a worker)."""
    try:
        body = CreateModelRequest.model_validate(
            {
                "datasetId": dataset,
                "slug": slug,
                "pruningRuleIds": pruning_rule or [],
                "defaultTemperature": default_temperature,
                "trainingConfig": _training_config(
                    base_model, epochs, lr_multiplier, batch_size, dpo, dpo_epochs, beta
                ),
            }
        )
    except (ValidationError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    try:
        service, principal = _open(project)
        ft = asyncio.run(service.create(principal, body))
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(
        f"Model [bold]openpipe:{ft.slug}[/bold] {ft.status}: {ft.train_rows} training rows, "
        f"{ft.test_rows} test rows, base {ft.root_model}"
    )
    if wait:
        _wait(service, principal, ft.slug, interval=1.0)


@models_app.command("list")
def models_list(project: ProjectOpt = None) -> None:
    """List the project's models, newest first."""
    try:
        service, principal = _open(project)
        models = asyncio.run(service.list(principal))
    except TunepipeError as exc:
        raise _fail(exc) from exc
    table = Table()
    # The name is what a caller needs: never cut it.
    table.add_column(
        "model", no_wrap=True, min_width=max((len(f"openpipe:{m.slug}") for m in models), default=5)
    )
    for column in ("status", "base model", "train", "test", "created"):
        table.add_column(column)
    for ft in models:
        status = ft.status if not ft.error_message else f"{ft.status}: {ft.error_message}"
        table.add_row(
            f"openpipe:{ft.slug}",
            status,
            ft.base_model,
            str(ft.train_rows),
            str(ft.test_rows),
            iso(ft.created_at),
        )
    console.print(table)


@models_app.command("get")
def models_get(slug: SlugArg, project: ProjectOpt = None) -> None:
    """Print a model as the API shows it (JSON)."""
    try:
        service, principal = _open(project)
        view = asyncio.run(_view(service, principal, slug))
    except TunepipeError as exc:
        raise _fail(exc) from exc
    # Plain JSON on stdout (no wrapping or colour), so it pipes into jq.
    sys.stdout.write(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode() + "\n")


async def _view(service: FineTuneService, principal: Principal, slug: str) -> dict[str, Any]:
    return await service.view(principal, await service.get(principal, slug))


def _progress_fields(ft: FineTune) -> tuple[str, int, int | None, str, str]:
    """stage, step, total steps, loss and ETA from the model's recorded progress."""
    p = ft.progress or {}
    stage = str(p.get("stage") or ft.status.lower())
    total = p.get("total_steps")
    loss = p.get("loss")
    eta = p.get("eta_s")
    return (
        stage,
        int(p.get("step") or 0),
        int(total) if isinstance(total, int | float) and total else None,
        f"{loss:.4f}" if isinstance(loss, int | float) else "-",
        f"{eta:.0f}s" if isinstance(eta, int | float) else "-",
    )


def _wait(service: FineTuneService, principal: Principal, slug: str, *, interval: float) -> None:
    columns = (
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=progress_console) as progress:
        task = progress.add_task("queued", total=None, loss="-", eta="-")
        while True:
            try:
                ft = asyncio.run(service.get(principal, slug))
            except TunepipeError as exc:
                raise _fail(exc) from exc
            stage, step, total, loss, eta = _progress_fields(ft)
            progress.update(task, description=stage, completed=step, total=total, loss=loss, eta=eta)
            if ft.status in FINISHED:
                break
            time.sleep(interval)
    if ft.status == FineTuneStatus.ERROR:
        console.print(f"[red]openpipe:{ft.slug} failed:[/red] {ft.error_message}")
        raise typer.Exit(code=1)
    metrics = ", ".join(f"{k} {v}" for k, v in (ft.metrics or {}).items() if isinstance(v, int | float))
    console.print(f"[green]openpipe:{ft.slug} is deployed.[/green] {metrics}")


@models_app.command("wait")
def models_wait(
    slug: SlugArg,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between checks.")] = 1.0,
    project: ProjectOpt = None,
) -> None:
    """Follow a model's training until it is DEPLOYED (exit 0) or ERROR (exit 1)."""
    try:
        service, principal = _open(project)
    except TunepipeError as exc:
        raise _fail(exc) from exc
    _wait(service, principal, slug, interval=interval)


@models_app.command("cancel")
def models_cancel(slug: SlugArg, project: ProjectOpt = None) -> None:
    """Cancel a model's training (a waiting model is cancelled at once)."""
    try:
        service, principal = _open(project)
        ft = asyncio.run(service.cancel(principal, slug))
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"openpipe:{ft.slug}: cancel requested ({ft.status}).")


@models_app.command("delete")
def models_delete(slug: SlugArg, project: ProjectOpt = None) -> None:
    """Delete a model, its training rows and its files."""
    try:
        service, principal = _open(project)
        ft = asyncio.run(service.delete(principal, slug))
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Deleted openpipe:{ft.slug}")


@models_app.command("download")
def models_download(
    slug: SlugArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the files into.")],
    merged: Annotated[
        bool, typer.Option("--merged", help="The base model with the adapter merged in, not the adapter.")
    ] = False,
    dtype: Annotated[str, typer.Option("--dtype", help="Merged weights: fp32, bf16 or fp16.")] = "bf16",
    project: ProjectOpt = None,
) -> None:
    """Write the LoRA adapter (vLLM: --lora-modules name=DIR) or merged weights into a directory."""
    try:
        service, principal = _open(project)
        if merged:
            with console.status("Merging the adapter into the base model…"):
                source = asyncio.run(service.merged_directory(principal, slug, dtype))
        else:
            source = asyncio.run(service.adapter_directory(principal, slug))
    except TunepipeError as exc:
        raise _fail(exc) from exc
    shutil.copytree(source, out, dirs_exist_ok=True)
    console.print(f"Wrote {'merged weights' if merged else 'the adapter'} of openpipe:{slug} to {out}")
