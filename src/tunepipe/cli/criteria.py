"""``tunepipe criteria``: LLM-judge criteria and their alignment sets (spec B.6) — versions,
the offline judge, filling and labelling the set, and how well each version agrees with humans.

``align`` queues an ``align`` job for a worker (the one inside ``tunepipe serve``, or
``tunepipe worker``) and follows it by polling the job, as ``models wait`` follows training;
agreement is computed from the stored judgements whenever it is asked for, so ``stats`` after a
relabel needs no new job.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json, progress_console
from tunepipe.domain.alignment import AlignmentRow, AlignmentStats, RowJudgement, judge_says
from tunepipe.domain.criteria import Criterion, render_output
from tunepipe.domain.jobs import Job, JobStatus
from tunepipe.protocol.criteria import (
    CreateCriterionRequest,
    JudgeRequest,
    SampleRowsRequest,
    criterion_view,
    row_view,
    stats_view,
)
from tunepipe.protocol.logs import iso
from tunepipe.services.container import Container
from tunepipe.services.gateway.judge import Judged

criteria_app = typer.Typer(
    help="Criteria: versioned LLM judges, with alignment sets that measure them.", no_args_is_help=True
)

IdArg = Annotated[str, typer.Argument(help="A criterion: name (the latest version) or name@vN.")]
NameArg = Annotated[str, typer.Argument(help="The criterion's name (versions share its alignment set).")]
CLIP = 60


def _usage_error(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=2)


def _text_or_file(text: str | None, file: Path | None, option: str) -> str:
    """The value of ``--<option>`` or the contents of ``--<option>-file``: exactly one is given."""
    if file is not None and text is None:
        return file.read_text()
    if text is None or file is not None:
        raise _usage_error(f"give exactly one of --{option} and --{option}-file")
    return text


def _clip(text: str, width: int = CLIP) -> str:
    """One line of someone's text, at most ``width`` characters, safe from Rich markup."""
    flat = " ".join(text.split())
    return escape(flat if len(flat) <= width else flat[: width - 1] + "…")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@criteria_app.command("create")
def criteria_create(
    name: Annotated[str, typer.Argument(help="The criterion's name; an existing name gets a new version.")],
    judge_model: Annotated[str, typer.Option("--judge-model", help="The model that judges.")],
    instructions: Annotated[str | None, typer.Option("--instructions", help="What passes.")] = None,
    instructions_file: Annotated[
        Path | None,
        typer.Option("--instructions-file", exists=True, dir_okay=False, help="Read the instructions here."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="For people.")] = None,
    variable: Annotated[
        list[str] | None,
        typer.Option("--variable", help="Also show the judge: messages, tools or tool_choice (repeatable)."),
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Create a criterion, or the next version of one; prints name@vN."""
    text = _text_or_file(instructions, instructions_file, "instructions")
    try:
        body = CreateCriterionRequest(
            name=name, instructions=text, judge_model=judge_model, description=description, variables=variable
        )
    except ValidationError as exc:
        raise _usage_error(str(exc)) from exc

    async def run(c: Container) -> Criterion:
        return await c.criteria.create(await c.projects.operator(project), body)

    console.print(f"Criterion [bold]{call(run).ref}[/bold] created.")


def _criteria_table(found: list[Criterion]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True, min_width=max((len(c.ref) for c in found), default=2))
    for column in ("judge model", "description", "created"):
        table.add_column(column)
    for c in found:
        table.add_row(c.ref, c.judge_model, _clip(c.description or ""), iso(c.created_at))
    return table


def _print_criteria(found: list[Criterion], as_json: bool) -> None:
    if as_json:
        print_json(json_list([criterion_view(c) for c in found]))
    else:
        console.print(_criteria_table(found))


@criteria_app.command("list")
def criteria_list(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List the project's criteria, each at its latest version."""

    async def run(c: Container) -> list[Criterion]:
        return await c.criteria.all(await c.projects.operator(project))

    _print_criteria(call(run), as_json)


@criteria_app.command("show")
def criteria_show(criterion_id: IdArg, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Show one version: every field, the instructions in full."""

    async def run(c: Container) -> Criterion:
        return await c.criteria.get(await c.projects.operator(project), criterion_id)

    crit = call(run)
    if as_json:
        print_json(criterion_view(crit))
        return
    table = Table(show_header=False, box=None)
    for field, value in (
        ("id", crit.ref),
        ("name", crit.name),
        ("version", str(crit.version)),
        ("judge model", crit.judge_model),
        ("description", escape(crit.description or "-")),
        ("variables", ", ".join(["output", *crit.variables])),
        ("created", iso(crit.created_at)),
    ):
        table.add_row(f"[bold]{field}[/bold]", value)
    console.print(table)
    console.print("[bold]instructions[/bold]")
    console.print(crit.instructions, markup=False, highlight=False)


@criteria_app.command("versions")
def criteria_versions(name: NameArg, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List every version of a criterion, oldest first."""

    async def run(c: Container) -> list[Criterion]:
        return await c.criteria.versions(await c.projects.operator(project), name)

    _print_criteria(call(run), as_json)


@criteria_app.command("delete")
def criteria_delete(criterion_id: IdArg, project: ProjectOpt = None) -> None:
    """Delete name@vN, or every version of name and its alignment set."""

    async def run(c: Container) -> int:
        return await c.criteria.delete(await c.projects.operator(project), criterion_id)

    console.print(f"Deleted {criterion_id}: {call(run)} version(s).")


@criteria_app.command("judge")
def criteria_judge(
    criterion_id: IdArg,
    messages_file: Annotated[
        Path,
        typer.Option(
            "--messages-file",
            exists=True,
            dir_okay=False,
            help="JSON: the input's messages, or an object with messages, tools and tool_choice.",
        ),
    ],
    output: Annotated[str | None, typer.Option("--output", help="The assistant's output text.")] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output-file", exists=True, dir_okay=False, help="Read the output here.")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Judge one output with a criterion; prints the score and the judge's explanation."""
    content = _text_or_file(output, output_file, "output")
    try:
        given = orjson.loads(messages_file.read_bytes())
        body = JudgeRequest.model_validate(
            {
                "criterion_id": criterion_id,
                "input": given if isinstance(given, dict) else {"messages": given},
                "output": {"role": "assistant", "content": content},
            }
        )
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise _usage_error(f"{messages_file}: {exc}") from exc

    async def run(c: Container) -> Judged:
        return await c.criteria.judge(await c.projects.operator(project), body)

    result = call(run)
    console.print(f"score {_num(result.result.score)}  (cost ${result.cost:.6f})")
    console.print(result.result.explanation or "", markup=False, highlight=False)


@criteria_app.command("align-upload")
def criteria_align_upload(
    name: NameArg,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A JSONL file of rows.")],
    project: ProjectOpt = None,
) -> None:
    """Add rows to the alignment set from JSONL (fine-tuning format, or messages + output, each
    with an optional judgement PASS/FAIL), all or nothing."""

    async def run(c: Container) -> tuple[int, list[tuple[int, str]]]:
        with file.open("rb") as f:
            return await c.alignment.upload(await c.projects.operator(project), name, f)

    added, errors = call(run)
    if errors:
        table = Table("line", "error")
        for line, message in errors:
            table.add_row(str(line), escape(message))
        console.print(table)
        console.print(f"[red]{len(errors)} invalid line(s); nothing added.[/red]")
        raise typer.Exit(code=1)
    console.print(f"{added} row(s) added to the alignment set of {name}.")


@criteria_app.command("align-sample")
def criteria_align_sample(
    name: NameArg,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id to sample from.")],
    count: Annotated[int, typer.Option("--count", "-n", help="How many entries.")],
    split: Annotated[str | None, typer.Option("--split", help="TRAIN or TEST (default: both).")] = None,
    output_source: Annotated[
        str, typer.Option("--output-source", help="dataset (the entries' own outputs), or a model.")
    ] = "dataset",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    project: ProjectOpt = None,
) -> None:
    """Add random dataset entries to the alignment set, unlabelled, with their own or a model's outputs."""
    try:
        body = SampleRowsRequest.model_validate(
            {
                "dataset_id": dataset,
                "count": count,
                "split": split.upper() if split else None,
                "output_source": output_source,
                "seed": seed,
            }
        )
    except ValidationError as exc:
        raise _usage_error(str(exc)) from exc

    async def run(c: Container) -> int:
        return await c.alignment.sample(await c.projects.operator(project), name, body)

    with progress_console.status("Sampling…"):
        added = call(run)
    console.print(f"{added} row(s) added to the alignment set of {name}.")


@criteria_app.command("label")
def criteria_label(
    name: NameArg,
    row_id: Annotated[str, typer.Argument(help="The alignment row's id.")],
    judgement: Annotated[str, typer.Argument(help="PASS, FAIL, or none to clear the label.")],
    project: ProjectOpt = None,
) -> None:
    """Label an alignment row as a human would judge it."""
    label = judgement.upper()
    if label not in ("PASS", "FAIL", "NONE"):
        raise _usage_error("the judgement is PASS, FAIL or none")
    value = None if label == "NONE" else label

    async def run(c: Container) -> None:
        await c.alignment.label(await c.projects.operator(project), name, row_id, value)

    call(run)
    console.print(f"Row {row_id}: {value or 'unlabelled'}.")


def _stats_table(crit: Criterion, stats: AlignmentStats, cost: float) -> Table:
    table = Table(title=f"{crit.ref} ({crit.judge_model}) against the humans")
    for column in ("accuracy", "precision", "recall", "F1", "kappa", "compared", "unlabelled", "errors"):
        table.add_column(column, justify="right")
    table.add_column("rows", justify="right")
    table.add_column("cost", justify="right")
    table.add_row(
        *(_num(v) for v in (stats.accuracy, stats.precision, stats.recall, stats.f1, stats.kappa)),
        *(str(n) for n in (stats.compared, stats.unlabelled, stats.errors, stats.rows)),
        f"${cost:.6f}",
    )
    return table


def _disagreements(rows: list[tuple[AlignmentRow, RowJudgement]]) -> Table:
    table = Table(title="Rows where the judge and the humans disagree")
    table.add_column("row id", no_wrap=True)
    for column in ("input", "output", "human", "judge", "explanation"):
        table.add_column(column)
    for row, judged in rows:
        table.add_row(
            row.id,
            _clip(render_output(row.messages[-1]) if row.messages else ""),
            _clip(render_output(row.output)),
            row.judgement or "",
            f"{judge_says(judged.score or 0.0)} ({_num(judged.score)})",
            _clip(judged.explanation or ""),
        )
    return table


@criteria_app.command("stats")
def criteria_stats(criterion_id: IdArg, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """How well a version's judge agrees with the human labels, and the rows where they differ."""

    async def run(c: Container) -> tuple[Criterion, AlignmentStats, float, list[Any]]:
        return await c.alignment.stats(await c.projects.operator(project), criterion_id)

    crit, stats, cost, disagreements = call(run)
    if as_json:
        print_json(
            {**stats_view(crit, stats, cost), "disagreements": [row_view(r, j) for r, j in disagreements]}
        )
        return
    console.print(_stats_table(crit, stats, cost))
    counts = Table("", "judge FAIL", "judge PASS", title="Counts (FAIL is the positive class)")
    counts.add_row("human FAIL", str(stats.true_fail), str(stats.missed_fail))
    counts.add_row("human PASS", str(stats.false_fail), str(stats.true_pass))
    console.print(counts)
    if disagreements:
        console.print(_disagreements(disagreements))
    else:
        console.print("No disagreements.")


@criteria_app.command("compare")
def criteria_compare(name: NameArg, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Every version's agreement with the humans, side by side."""

    async def run(c: Container) -> list[tuple[Criterion, AlignmentStats, float]]:
        return await c.alignment.compare(await c.projects.operator(project), name)

    if as_json:
        print_json(json_list([stats_view(crit, s, cost) for crit, s, cost in call(run)]))
        return
    table = Table(title=f"Versions of {name} against the humans")
    table.add_column("version", no_wrap=True)
    table.add_column("judge model")
    for column in ("accuracy", "precision", "recall", "F1", "kappa", "compared", "errors", "cost"):
        table.add_column(column, justify="right")
    for crit, s, cost in call(run):
        table.add_row(
            crit.ref,
            crit.judge_model,
            *(_num(v) for v in (s.accuracy, s.precision, s.recall, s.f1, s.kappa)),
            str(s.compared),
            str(s.errors),
            f"${cost:.6f}",
        )
    console.print(table)


async def _follow(c: Container, project: str | None, job: Job, *, interval: float) -> Job:
    principal = await c.projects.operator(project)
    columns = (TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=progress_console) as progress:
        task = progress.add_task("queued", total=None)
        while True:
            job = await c.jobs.get(principal, job.id)
            p = job.progress
            total = p.get("total")
            progress.update(
                task,
                description=str(p.get("stage") or job.status.lower()),
                completed=int(p.get("done") or 0),
                total=int(total) if isinstance(total, int) and total else None,
            )
            if job.finished:
                return job
            await asyncio.sleep(interval)


@criteria_app.command("align")
def criteria_align(
    criterion_id: IdArg,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Judge rows this version has judged already.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")] = True,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between checks.")] = 1.0,
    project: ProjectOpt = None,
) -> None:
    """Judge the alignment set with a version (a job), then print its agreement with the humans."""

    async def run(c: Container) -> tuple[Job, tuple[Criterion, AlignmentStats, float, list[Any]] | None]:
        principal = await c.projects.operator(project)
        job = await c.alignment.start(principal, criterion_id, rerun=rerun)
        console.print(f"Align job {job.id} queued for {job.params['criterion']}.")
        if not wait:
            return job, None
        job = await _follow(c, project, job, interval=interval)
        return job, await c.alignment.stats(principal, str(job.params["criterion"]))

    job, found = call(run)
    if found is None:
        return
    if job.status != JobStatus.DONE:
        console.print(f"[red]Align job {job.id} {job.status}:[/red] {escape(job.error_message or '')}")
        raise typer.Exit(code=1)
    crit, stats, cost, _ = found
    console.print(_stats_table(crit, stats, cost))
