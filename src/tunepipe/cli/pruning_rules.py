"""``tunepipe pruning-rules``: list, add, remove and report a dataset's pruning rules (spec B.11)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tunepipe.cli.context import JsonOpt, ProjectOpt, call, console, json_list, print_json
from tunepipe.domain.pruning import PruningRule
from tunepipe.errors import InvalidRequest
from tunepipe.protocol.pruning import report_view, rule_view
from tunepipe.services.container import Container

pruning_rules_app = typer.Typer(
    help="Pruning rules: boilerplate text removed from a dataset's inputs for training and inference.",
    no_args_is_help=True,
)

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Dataset id.")]


async def _project_id(c: Container, project: str | None) -> str:
    return (await c.projects.named(project)).id


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
def pruning_rules_list(dataset: DatasetOpt, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List a dataset's rules in the order they are applied."""

    async def run(c: Container) -> list[tuple[PruningRule, dict[str, Any]]]:
        rules = await c.pruning.rules(await _project_id(c, project), dataset)
        return [(rule, rule_view(rule, c.pruning.count_tokens)) for rule in rules]

    found = call(run)
    if as_json:
        print_json(json_list([view for _, view in found]))
        return
    table = _table("tokens")
    for i, (rule, view) in enumerate(found, 1):
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
    if text is not None and from_file is None:
        body = text
    elif text is None and from_file is not None:
        body = from_file.read_text(encoding="utf-8")
    else:
        raise InvalidRequest("Give the text or --from-file, not both")

    async def run(c: Container) -> PruningRule:
        return await c.pruning.add(await _project_id(c, project), dataset, body)

    rule = call(run)
    console.print(f"Pruning rule {rule.id} added ({rule_view(rule)['tokensInText']} tokens).")


@pruning_rules_app.command("remove")
def pruning_rules_remove(
    rule_id: Annotated[str, typer.Argument(help="The rule's id.")],
    dataset: DatasetOpt,
    project: ProjectOpt = None,
) -> None:
    """Remove a rule (fine-tunes already trained keep their copy)."""

    async def run(c: Container) -> None:
        await c.pruning.remove(await _project_id(c, project), dataset, rule_id)

    call(run)
    console.print(f"Pruning rule {rule_id} removed.")


@pruning_rules_app.command("report")
def pruning_rules_report(dataset: DatasetOpt, project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Apply the rules to the dataset's entries: matches and tokens saved per rule."""

    async def run(c: Container) -> dict[str, Any]:
        return report_view(
            await c.pruning.report(await _project_id(c, project), dataset), c.pruning.count_tokens
        )

    if as_json:
        print_json(call(run))
        return
    with console.status("Applying the rules to every entry…"):
        report = call(run)
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
