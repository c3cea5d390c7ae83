"""``tunepipe pruning-rules``: list, add, remove and report a dataset's pruning rules (spec B.11)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunepipe.errors import InvalidRequest, TunepipeError
from tunepipe.services import setup
from tunepipe.services.pruning import PruningService
from tunepipe.settings import Settings

pruning_rules_app = typer.Typer(
    help="Pruning rules: boilerplate text removed from a dataset's inputs for training and inference.",
    no_args_is_help=True,
)

console = Console()
DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset id.")]
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="Project name (default: default).")]


def _service_and_project(project: str | None) -> tuple[PruningService, str]:
    engine = setup.open_engine(Settings())
    return PruningService(engine), setup.project_named(engine, project).id


def _fail(exc: TunepipeError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(code=1)


def _table(*numbers: str) -> Table:
    """Rule id (never cut: it is what ``remove`` takes), numbers, then as much text as fits."""
    table = Table("#")
    table.add_column("id", no_wrap=True, min_width=36)
    for name in numbers:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("text", overflow="ellipsis", no_wrap=True)
    return table


def _preview(text: str, width: int = 60) -> str:
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@pruning_rules_app.command("list")
def pruning_rules_list(dataset: DatasetOpt, project: ProjectOpt = None) -> None:
    """List a dataset's rules in the order they are applied."""
    try:
        service, project_id = _service_and_project(project)
        rules = service.list_sync(project_id, dataset)
    except TunepipeError as exc:
        raise _fail(exc) from exc
    table = _table("tokens")
    for i, rule in enumerate(rules, 1):
        view = service.view(rule)
        table.add_row(str(i), rule.id, str(view["tokensInText"]), _preview(rule.text_to_match))
    console.print(table)


@pruning_rules_app.command("add")
def pruning_rules_add(
    dataset: DatasetOpt,
    text: Annotated[str | None, typer.Argument(help="The exact text to remove.")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Read the text from a file (e.g. a system prompt).")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Add a rule; it runs after the existing ones."""
    try:
        if (text is None) == (from_file is None):
            raise InvalidRequest("Give the text or --from-file, not both")
        body = text if text is not None else from_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
        service, project_id = _service_and_project(project)
        rule = service.add_sync(project_id, dataset, body)
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Pruning rule {rule.id} added ({service.view(rule)['tokensInText']} tokens).")


@pruning_rules_app.command("remove")
def pruning_rules_remove(
    rule_id: Annotated[str, typer.Argument(help="The rule's id.")],
    dataset: DatasetOpt,
    project: ProjectOpt = None,
) -> None:
    """Remove a rule (fine-tunes already trained keep their copy)."""
    try:
        service, project_id = _service_and_project(project)
        service.remove_sync(project_id, dataset, rule_id)
    except TunepipeError as exc:
        raise _fail(exc) from exc
    console.print(f"Pruning rule {rule_id} removed.")


@pruning_rules_app.command("report")
def pruning_rules_report(dataset: DatasetOpt, project: ProjectOpt = None) -> None:
    """Apply the rules to the dataset's entries: matches and tokens saved per rule."""
    try:
        service, project_id = _service_and_project(project)
        with console.status("Applying the rules to every entry…"):
            report = service.report_sync(project_id, dataset)
    except TunepipeError as exc:
        raise _fail(exc) from exc
    table = _table("matches", "tokens saved")
    for i, row in enumerate(report["data"], 1):
        table.add_row(
            str(i), row["id"], str(row["matches"]), str(row["tokensSaved"]), _preview(row["textToMatch"])
        )
    console.print(table)
    console.print(
        f"{report['entries']} entries, {report['entriesChanged']} changed, "
        f"{report['messagesDropped']} messages dropped, about {report['tokensSaved']} tokens saved."
    )
