"""Pruning rules of a dataset: rows of ``pruning_rules``, returned as frozen values.

Every function takes the project id and matches it, so a rule of another project is simply not
found. Rules are ordered by ``created_at``, which :func:`add_rule` keeps strictly increasing
per dataset (two rules added in the same millisecond still have an order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from tunepipe.db.schema import dataset_entries, datasets, pruning_rules
from tunepipe.domain.clock import now_ms
from tunepipe.domain.ids import uuid7
from tunepipe.domain.pruning import PruningRule

ENTRY_BATCH = 500


def _rule(row: Row[Any]) -> PruningRule:
    return PruningRule(
        id=row.id,
        project_id=row.project_id,
        dataset_id=row.dataset_id,
        fine_tune_id=row.fine_tune_id,
        text_to_match=row.text_to_match,
        created_at=row.created_at,
    )


def dataset_exists(conn: Connection, project_id: str, dataset_id: str) -> bool:
    query = select(datasets.c.id).where(datasets.c.id == dataset_id, datasets.c.project_id == project_id)
    return conn.execute(query).first() is not None


def list_rules(conn: Connection, project_id: str, dataset_id: str) -> list[PruningRule]:
    query = (
        select(pruning_rules)
        .where(pruning_rules.c.project_id == project_id, pruning_rules.c.dataset_id == dataset_id)
        .order_by(pruning_rules.c.created_at, pruning_rules.c.id)
    )
    return [_rule(r) for r in conn.execute(query)]


def get_rule(conn: Connection, project_id: str, dataset_id: str, rule_id: str) -> PruningRule | None:
    query = select(pruning_rules).where(
        pruning_rules.c.id == rule_id,
        pruning_rules.c.project_id == project_id,
        pruning_rules.c.dataset_id == dataset_id,
    )
    row = conn.execute(query).first()
    return _rule(row) if row is not None else None


def add_rule(conn: Connection, project_id: str, dataset_id: str, text: str) -> PruningRule:
    last = conn.execute(
        select(func.max(pruning_rules.c.created_at)).where(pruning_rules.c.dataset_id == dataset_id)
    ).scalar()
    rule = PruningRule(
        id=uuid7(),
        project_id=project_id,
        dataset_id=dataset_id,
        fine_tune_id=None,
        text_to_match=text,
        created_at=max(now_ms(), (last or 0) + 1),
    )
    conn.execute(
        insert(pruning_rules).values(
            id=rule.id,
            project_id=project_id,
            dataset_id=dataset_id,
            fine_tune_id=None,
            text_to_match=text,
            created_at=rule.created_at,
        )
    )
    return rule


def update_rule(conn: Connection, project_id: str, dataset_id: str, rule_id: str, text: str) -> bool:
    """Change a rule's text (its place in the order stays); False if there is no such rule."""
    result = conn.execute(
        update(pruning_rules)
        .where(
            pruning_rules.c.id == rule_id,
            pruning_rules.c.project_id == project_id,
            pruning_rules.c.dataset_id == dataset_id,
        )
        .values(text_to_match=text)
    )
    return bool(result.rowcount)


def delete_rule(conn: Connection, project_id: str, dataset_id: str, rule_id: str) -> bool:
    result = conn.execute(
        delete(pruning_rules).where(
            pruning_rules.c.id == rule_id,
            pruning_rules.c.project_id == project_id,
            pruning_rules.c.dataset_id == dataset_id,
        )
    )
    return bool(result.rowcount)


def rules_with_ids(conn: Connection, dataset_id: str, ids: Sequence[str]) -> list[PruningRule]:
    """The dataset's rules among ``ids``, oldest first (ids that are not its rules are left out)."""
    if not ids:
        return []
    query = (
        select(pruning_rules)
        .where(pruning_rules.c.dataset_id == dataset_id, pruning_rules.c.id.in_(list(ids)))
        .order_by(pruning_rules.c.created_at, pruning_rules.c.id)
    )
    return [_rule(r) for r in conn.execute(query)]


def iter_entry_messages(conn: Connection, project_id: str, dataset_id: str) -> Iterator[str]:
    """The JSON text of every entry's input messages, streamed in batches (bounded memory)."""
    query = (
        select(dataset_entries.c.messages)
        .where(dataset_entries.c.dataset_id == dataset_id, dataset_entries.c.project_id == project_id)
        .order_by(dataset_entries.c.created_at, dataset_entries.c.id)
    )
    result = conn.execution_options(yield_per=ENTRY_BATCH).execute(query)
    for row in result:
        yield row.messages


# A fine-tune's own copies (``fine_tune_id`` set, ``dataset_id`` null): rules edited or deleted
# on the dataset later never change what an already trained model prunes.


def copy_to_fine_tune(conn: Connection, project_id: str, fine_tune_id: str, texts: Sequence[str]) -> None:
    """Store ``texts`` (oldest first) as the fine-tune's rules, keeping their order."""
    if not texts:
        return
    start = now_ms()
    rows = [
        {
            "id": uuid7(),
            "project_id": project_id,
            "dataset_id": None,
            "fine_tune_id": fine_tune_id,
            "text_to_match": text,
            "created_at": start + i,
        }
        for i, text in enumerate(texts)
    ]
    conn.execute(insert(pruning_rules), rows)


def texts_for_fine_tune(conn: Connection, fine_tune_id: str) -> list[str]:
    """The fine-tune's rule texts in the order they apply."""
    c = pruning_rules.c
    query = select(c.text_to_match).where(c.fine_tune_id == fine_tune_id).order_by(c.created_at, c.id)
    return [str(t) for t in conn.execute(query).scalars()]


def delete_for_fine_tune(conn: Connection, fine_tune_id: str) -> int:
    return int(
        conn.execute(delete(pruning_rules).where(pruning_rules.c.fine_tune_id == fine_tune_id)).rowcount
    )
