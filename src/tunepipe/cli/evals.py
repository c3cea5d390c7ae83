"""``tunepipe evals``: evaluations over a dataset's TEST entries (spec B.5) — head-to-head,
criteria or code graders — created, followed, read, extended with models and deleted.

An eval runs as an ``evaluate`` job for a worker (the one inside ``tunepipe serve``, or
``tunepipe worker``); ``create`` follows it by polling the eval, whose results are live while
it runs. One function renders results, so ``create`` and ``show`` print the same table.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json, progress_console
from tunepipe.domain.criteria import render_output
from tunepipe.domain.evals import DATASET_MODEL, Eval, EvalType, Judgement, eval_status
from tunepipe.domain.jobs import Job
from tunepipe.protocol.evals import CreateEvalRequest, eval_list_view, eval_row_view, eval_state_view
from tunepipe.protocol.logs import iso
from tunepipe.services.container import Container
from tunepipe.services.evals.service import EvalRow, EvalState

evals_app = typer.Typer(
    help="Evaluations: compare models on a dataset's TEST entries (head-to-head, criteria, code).",
    no_args_is_help=True,
)

EvalArg = Annotated[str, typer.Argument(help="The eval's id.")]
ModelOpt = Annotated[list[str], typer.Option("--model", "-m", help="A model to evaluate (repeatable).")]
FINISHED = ("COMPLETE", "ERROR", "CANCELLED")
CLIP = 48


def _clip(text: str, width: int = CLIP) -> str:
    """One line of someone's text, at most ``width`` characters, safe from Rich markup."""
    flat = " ".join(text.split())
    return escape(flat if len(flat) <= width else flat[: width - 1] + "…")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def results_tables(eval_type: EvalType, results: dict[str, Any]) -> list[Table]:
    """The results table (best model first) and, head-to-head, the model-vs-model matrix."""
    h2h = eval_type is EvalType.HEAD_TO_HEAD
    title = "Score: the win rate, a tie counting half" if h2h else "Score: the mean of the judged rows"
    table = Table(title=title)
    table.add_column("Model", no_wrap=True)
    table.add_column("Score", justify="right")
    counts = ("wins", "ties", "losses", "judged", "errors") if h2h else ("judged", "errors")
    for name in counts:
        table.add_column(name.capitalize(), justify="right")
    table.add_column("Cost", justify="right")
    for row in results.get("models", []):
        table.add_row(
            row["model"], _num(row["score"]), *(str(row[n]) for n in counts), f"${row['cost_usd']:.6f}"
        )
    table.caption = (
        f"judge cost ${results.get('judge_cost_usd', 0):.6f}, total ${results.get('cost_usd', 0):.6f}"
    )
    tables = [table]
    matrix: dict[str, dict[str, float | None]] | None = results.get("matrix")
    if h2h and matrix:
        grid = Table(title="Row model's win rate against the column model")
        grid.add_column("", no_wrap=True)
        for model in matrix:
            grid.add_column(model, justify="right")
        for model, against in matrix.items():
            grid.add_row(model, *("" if b == model else _num(against.get(b)) for b in matrix))
        tables.append(grid)
    return tables


def _progress_line(progress: dict[str, Any]) -> str:
    return ", ".join(f"{k} {progress.get(k, 0)}" for k in ("generated", "reused", "judged", "errors"))


def _show(state: EvalState) -> None:
    ev = state.eval
    p = state.job.progress if state.job else {}
    table = Table(show_header=False, box=None)
    fields = [
        ("name", escape(ev.name)),
        ("id", ev.id),
        ("type", ev.type.value),
        ("dataset", ev.dataset_id),
        ("models", ", ".join(ev.models)),
        ("status", state.status),
        ("progress", f"{p.get('done', 0)}/{p.get('total', state.entries)} entries; {_progress_line(p)}"),
    ]
    if ev.judge_model:
        fields.append(("judge model", ev.judge_model))
        fields.append(("both orders", "yes" if ev.both_orders else "no"))
    if ev.criteria:
        fields.append(("criteria", ", ".join(ev.criteria)))
    if ev.grader is not None:
        fields.append(("grader", str(ev.grader.get("builtin") or "custom")))
    if state.job is not None and state.job.error_message:
        fields.append(("error", escape(state.job.error_message)))
    fields.append(("created", iso(ev.created_at)))
    for name, value in fields:
        table.add_row(f"[bold]{name}[/bold]", value)
    console.print(table)
    for results in results_tables(ev.type, state.results):
        console.print(results)


async def _follow(c: Container, project: str | None, eval_id: str, *, interval: float) -> EvalState:
    principal = await c.projects.operator(project)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=progress_console) as progress:
        task = progress.add_task("queued", total=None)
        while True:
            state = await c.evals.get(principal, eval_id)
            p = state.job.progress if state.job else {}
            total = p.get("total")
            stage = str(p.get("stage") or state.status.lower())
            progress.update(
                task,
                description=f"{stage}: {_progress_line(p)}",
                completed=int(p.get("done") or 0),
                total=int(total) if isinstance(total, int) and total else None,
            )
            if state.status in FINISHED:
                return state
            await asyncio.sleep(interval)


def _grader(grader: str | None, grader_file: Path | None) -> str | dict[str, str] | None:
    if grader is not None and grader_file is not None:
        console.print("[red]error:[/red] give at most one of --grader and --grader-file")
        raise typer.Exit(code=2)
    return {"source": grader_file.read_text()} if grader_file is not None else grader


@evals_app.command("create")
def evals_create(
    name: Annotated[str, typer.Option("--name", help="The eval's name.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id: its TEST entries are used.")],
    eval_type: Annotated[str, typer.Option("--type", help="head_to_head, criteria or code.")],
    model: ModelOpt,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="Head-to-head: the judge.")] = None,
    instructions: Annotated[
        str | None, typer.Option("--instructions", help="Head-to-head: what the judge prefers.")
    ] = None,
    criterion: Annotated[
        list[str] | None, typer.Option("--criterion", help="Criteria: name or name@vN (repeatable).")
    ] = None,
    grader: Annotated[
        str | None, typer.Option("--grader", help="Code: a built-in grader's name (or Python source).")
    ] = None,
    grader_file: Annotated[
        Path | None,
        typer.Option("--grader-file", exists=True, dir_okay=False, help="Code: Python defining grader(...)."),
    ] = None,
    num_entries: Annotated[
        int | None, typer.Option("--num-entries", help="A seeded sample of this many entries (default all).")
    ] = None,
    both_orders: Annotated[
        bool, typer.Option("--both-orders", help="Head-to-head: judge each pair in both orders.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the eval until it ends.")] = True,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between checks.")] = 1.0,
    project: ProjectOpt = None,
) -> None:
    """Create an eval (queued for a worker); unless --no-wait, follow it and print its results."""
    try:
        body = CreateEvalRequest.model_validate(
            {
                "name": name,
                "dataset_id": dataset,
                "type": eval_type,
                "models": model,
                "judge_model": judge_model,
                "instructions": instructions,
                "criteria": criterion,
                "grader": _grader(grader, grader_file),
                "num_entries": num_entries,
                "both_orders": both_orders,
                "seed": seed,
            }
        )
    except ValidationError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc

    async def run(c: Container) -> EvalState | None:
        ev, job = await c.evals.create(await c.projects.operator(project), body)
        console.print(f"Eval [bold]{escape(ev.name)}[/bold] {eval_status(job.status)}: {ev.id}")
        return await _follow(c, project, ev.id, interval=interval) if wait else None

    state = call(run)
    if state is None:
        return
    for table in results_tables(state.eval.type, state.results):
        console.print(table)
    if state.status != "COMPLETE":
        message = state.job.error_message if state.job else None
        console.print(
            f"[red]Eval {state.eval.id} {state.status}[/red]{f': {escape(message)}' if message else ''}"
        )
        raise typer.Exit(code=1)


@evals_app.command("show")
def evals_show(eval_id: EvalArg, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Show an eval: its status, progress and results so far."""

    async def run(c: Container) -> EvalState:
        return await c.evals.get(await c.projects.operator(project), eval_id)

    state = call(run)
    if as_json:
        print_json(eval_state_view(state.eval, state.job, state.entries, state.results))
    else:
        _show(state)


@evals_app.command("list")
def evals_list(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset's evals.")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the project's evals, newest first."""

    async def run(c: Container) -> list[tuple[Eval, Job | None]]:
        return await c.evals.all(await c.projects.operator(project), dataset)

    if as_json:
        print_json(json_list([eval_list_view(ev, job) for ev, job in call(run)]))
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("name", "type", "status", "progress", "models", "created"):
        table.add_column(column)
    for ev, job in call(run):
        p = job.progress if job else {}
        done = f"{p['done']}/{p['total']}" if "done" in p and "total" in p else "-"
        status = eval_status(job.status if job else None)
        table.add_row(
            ev.id, escape(ev.name), ev.type.value, status, done, ", ".join(ev.models), iso(ev.created_at)
        )
    console.print(table)


def _verdict(ev: Eval, j: Judgement) -> str:
    if j.status != "success" or j.score is None:
        result = f"error: {_clip(j.error_message or '', 30)}"
    elif ev.type is EvalType.HEAD_TO_HEAD:
        result = {1.0: "win", 0.0: "loss"}.get(j.score, "tie")
    else:
        result = _num(j.score)
    if j.opponent:
        return f"{j.model} vs {j.opponent}: {result}"
    return f"{j.model}{f' {j.criterion}' if j.criterion else ''}: {result}"


@evals_app.command("rows")
def evals_rows(
    eval_id: EvalArg,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A page of the eval's entries: input, each model's output, and the verdicts."""

    async def run(c: Container) -> tuple[Eval, list[EvalRow], int]:
        principal = await c.projects.operator(project)
        state = await c.evals.get(principal, eval_id)
        rows, total = await c.evals.rows(principal, eval_id, offset=offset, limit=limit)
        return state.eval, rows, total

    ev, rows, total = call(run)
    if as_json:
        data = [
            eval_row_view(r.entry, {m: o.output for m, o in r.outputs.items()}, r.judgements) for r in rows
        ]
        print_json({"object": "list", "data": data, "total": total, "offset": offset})
        return
    table = Table(caption=f"entries {offset + 1}-{offset + len(rows)} of {total}" if rows else None)
    table.add_column("entry id", no_wrap=True)
    table.add_column("input")
    for model in ev.models:
        table.add_column(model)
    table.add_column("verdicts")
    for row in rows:
        messages = row.entry.data.messages
        outputs = [
            row.entry.data.output if m == DATASET_MODEL else (o.output if (o := row.outputs.get(m)) else None)
            for m in ev.models
        ]
        table.add_row(
            row.entry.id,
            _clip(render_output(messages[-1]) if messages else ""),
            *(_clip(render_output(out)) if out else "-" for out in outputs),
            "\n".join(_verdict(ev, j) for j in row.judgements),
        )
    console.print(table)


@evals_app.command("add-models")
def evals_add_models(eval_id: EvalArg, model: ModelOpt, project: ProjectOpt = None) -> None:
    """Add models to an eval; a new job makes only their outputs and judgements."""

    async def run(c: Container) -> tuple[Eval, Job]:
        return await c.evals.add_models(await c.projects.operator(project), eval_id, model)

    ev, job = call(run)
    console.print(f"Eval {ev.id} {eval_status(job.status)} (job {job.id}): models {', '.join(ev.models)}")


@evals_app.command("delete")
def evals_delete(eval_id: EvalArg, project: ProjectOpt = None) -> None:
    """Delete an eval and its judgements (a running job is cancelled)."""

    async def run(c: Container) -> None:
        await c.evals.delete(await c.projects.operator(project), eval_id)

    call(run)
    console.print(f"Deleted eval {eval_id}.")
