"""``tunepipe models``: train a model from a dataset, follow its training, list, cancel, delete,
and download its adapter or merged weights (spec A.4, B.3).

Training itself is done by a worker — the one inside ``tunepipe serve``, or ``tunepipe worker``
— that picks the queued job up; ``wait`` follows it by polling the model.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json, progress_console
from tunepipe.domain.fine_tunes import FineTune, FineTuneStatus
from tunepipe.engine.sources import DEFAULT_MODEL
from tunepipe.protocol.logs import iso
from tunepipe.protocol.models import CreateModelRequest, model_view
from tunepipe.services.container import Container

models_app = typer.Typer(
    help="Fine-tuned models: train one from a dataset, follow it, download it; call it as openpipe:<slug>.",
    no_args_is_help=True,
)

SlugArg = Annotated[str, typer.Argument(help="The model's slug (openpipe:<slug> works too).")]
FINISHED = (FineTuneStatus.DEPLOYED, FineTuneStatus.ERROR)


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

    async def run(c: Container) -> FineTune:
        principal = await c.projects.operator(project)
        ft = await c.fine_tunes.create(principal, body)
        console.print(
            f"Model [bold]openpipe:{ft.slug}[/bold] {ft.status}: {ft.train_rows} training rows, "
            f"{ft.test_rows} test rows, base {ft.root_model}"
        )
        if wait:
            ft = await _wait(c, project, ft.slug, interval=1.0)
        return ft

    _finished(call(run), wait)


@models_app.command("list")
def models_list(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List the project's models, newest first."""

    async def run(c: Container) -> list[FineTune]:
        return await c.fine_tunes.all(await c.projects.operator(project))

    async def views(c: Container) -> list[dict[str, Any]]:
        principal = await c.projects.operator(project)
        details = await c.fine_tunes.details(await c.fine_tunes.all(principal))
        owner = principal.project.name
        return [model_view(d.fine_tune, progress=d.progress, owner=owner, context=d.context) for d in details]

    if as_json:
        print_json(json_list(call(views)))
        return
    models = call(run)
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

    async def run(c: Container) -> dict[str, Any]:
        principal = await c.projects.operator(project)
        d = await c.fine_tunes.detail(await c.fine_tunes.get(principal, slug))
        return model_view(d.fine_tune, progress=d.progress, owner=principal.project.name, context=d.context)

    print_json(call(run))


def _progress_fields(ft: FineTune, p: dict[str, Any]) -> tuple[str, int, int | None, str, str]:
    """stage, step, total steps, loss and ETA from the model's training progress."""
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


async def _wait(c: Container, project: str | None, slug: str, *, interval: float) -> FineTune:
    principal = await c.projects.operator(project)
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
            d = await c.fine_tunes.detail(await c.fine_tunes.get(principal, slug))
            stage, step, total, loss, eta = _progress_fields(d.fine_tune, d.progress)
            progress.update(task, description=stage, completed=step, total=total, loss=loss, eta=eta)
            if d.fine_tune.status in FINISHED:
                return d.fine_tune
            await asyncio.sleep(interval)


def _finished(ft: FineTune, waited: bool) -> None:
    if not waited:
        return
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
    _finished(call(lambda c: _wait(c, project, slug, interval=interval)), True)


@models_app.command("cancel")
def models_cancel(slug: SlugArg, project: ProjectOpt = None) -> None:
    """Cancel a model's training (a waiting model is cancelled at once)."""

    async def run(c: Container) -> FineTune:
        return await c.fine_tunes.cancel(await c.projects.operator(project), slug)

    ft = call(run)
    console.print(f"openpipe:{ft.slug}: cancel requested ({ft.status}).")


@models_app.command("delete")
def models_delete(slug: SlugArg, project: ProjectOpt = None) -> None:
    """Delete a model, its training rows and its files."""

    async def run(c: Container) -> FineTune:
        return await c.fine_tunes.delete(await c.projects.operator(project), slug)

    console.print(f"Deleted openpipe:{call(run).slug}")


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

    async def run(c: Container) -> Path:
        principal = await c.projects.operator(project)
        if merged:
            return await c.fine_tunes.merged_directory(principal, slug, dtype)
        return await c.fine_tunes.adapter_directory(principal, slug)

    with console.status("Merging the adapter into the base model…" if merged else "Unpacking the adapter…"):
        source = call(run)
    shutil.copytree(source, out, dirs_exist_ok=True)
    console.print(f"Wrote {'merged weights' if merged else 'the adapter'} of openpipe:{slug} to {out}")
