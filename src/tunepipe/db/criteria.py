"""Criteria, their versions and alignment sets, every query scoped by project.

A new version takes the next number for its name inside the inserting transaction; two writers
racing for the same number meet the unique constraint, and the loser is told to retry (409).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tunepipe.db.schema import alignment_judgements, alignment_rows, criteria
from tunepipe.domain.alignment import AlignmentRow, RowJudgement
from tunepipe.domain.clock import now_ms
from tunepipe.domain.criteria import Criterion
from tunepipe.domain.ids import uuid7
from tunepipe.errors import Conflict


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _criterion(row: Any) -> Criterion:
    return Criterion(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        version=row.version,
        instructions=row.instructions,
        judge_model=row.judge_model,
        description=row.description,
        variables=tuple(orjson.loads(row.variables)),
        created_at=row.created_at,
    )


def create_version(
    conn: Connection,
    project_id: str,
    name: str,
    *,
    instructions: str,
    judge_model: str,
    description: str | None,
    variables: Sequence[str],
) -> Criterion:
    c = criteria.c
    latest = conn.execute(
        select(func.max(c.version)).where(c.project_id == project_id, c.name == name)
    ).scalar()
    created = Criterion(
        id=uuid7(),
        project_id=project_id,
        name=name,
        version=(latest or 0) + 1,
        instructions=instructions,
        judge_model=judge_model,
        description=description,
        variables=tuple(variables),
        created_at=now_ms(),
    )
    values = {f: getattr(created, f) for f in Criterion.__dataclass_fields__}
    values["variables"] = _dumps(list(created.variables))
    try:
        conn.execute(insert(criteria).values(**values))
    except IntegrityError as exc:
        raise Conflict(f"Criterion {name} was changed at the same time; try again", param="name") from exc
    return created


def get(conn: Connection, project_id: str, name: str, version: int | None = None) -> Criterion | None:
    """Version ``version`` of ``name``, or its latest."""
    c = criteria.c
    query = select(criteria).where(c.project_id == project_id, c.name == name)
    query = query.where(c.version == version) if version is not None else query.order_by(c.version.desc())
    row = conn.execute(query.limit(1)).first()
    return _criterion(row) if row is not None else None


def get_by_id(conn: Connection, project_id: str, criterion_id: str) -> Criterion | None:
    c = criteria.c
    row = conn.execute(select(criteria).where(c.project_id == project_id, c.id == criterion_id)).first()
    return _criterion(row) if row is not None else None


def exists(conn: Connection, project_id: str, name: str) -> bool:
    c = criteria.c
    return (
        conn.execute(select(c.id).where(c.project_id == project_id, c.name == name).limit(1)).first()
        is not None
    )


def list_latest(conn: Connection, project_id: str) -> list[Criterion]:
    c = criteria.c
    latest = (
        select(c.name, func.max(c.version).label("version"))
        .where(c.project_id == project_id)
        .group_by(c.name)
        .subquery()
    )
    rows = conn.execute(
        select(criteria)
        .join(latest, (c.name == latest.c.name) & (c.version == latest.c.version))
        .where(c.project_id == project_id)
        .order_by(c.name)
    ).all()
    return [_criterion(r) for r in rows]


def list_versions(conn: Connection, project_id: str, name: str) -> list[Criterion]:
    c = criteria.c
    rows = conn.execute(
        select(criteria).where(c.project_id == project_id, c.name == name).order_by(c.version)
    ).all()
    return [_criterion(r) for r in rows]


def delete_criterion(conn: Connection, project_id: str, name: str, version: int | None) -> int:
    """Delete one version, or every version and the alignment set; the number of versions gone."""
    c = criteria.c
    query = delete(criteria).where(c.project_id == project_id, c.name == name)
    if version is not None:
        query = query.where(c.version == version)
    removed = conn.execute(query).rowcount
    if version is None or not exists(conn, project_id, name):
        a = alignment_rows.c
        conn.execute(delete(alignment_rows).where(a.project_id == project_id, a.criterion_name == name))
    return int(removed)


# Alignment sets


def _row(row: Any) -> AlignmentRow:
    return AlignmentRow(
        id=row.id,
        criterion_name=row.criterion_name,
        messages=_loads(row.messages),
        output=_loads(row.output),
        tools=_loads(row.tools),
        tool_choice=_loads(row.tool_choice),
        judgement=row.judgement,
        source=row.source,
        dataset_entry_id=row.dataset_entry_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def add_rows(conn: Connection, project_id: str, name: str, rows: Sequence[dict[str, Any]]) -> int:
    """Insert alignment rows (``messages``, ``output``, ``tools``, ``tool_choice``, ``judgement``,
    ``source``, ``dataset_entry_id``), in order."""
    now = now_ms()
    if rows:
        conn.execute(
            insert(alignment_rows),
            [
                {
                    "id": uuid7(),
                    "project_id": project_id,
                    "criterion_name": name,
                    "messages": _dumps(r["messages"]),
                    "output": _dumps(r["output"]),
                    "tools": _dumps(r.get("tools")),
                    "tool_choice": _dumps(r.get("tool_choice")),
                    "judgement": r.get("judgement"),
                    "source": r["source"],
                    "dataset_entry_id": r.get("dataset_entry_id"),
                    "created_at": now,
                    "updated_at": now,
                }
                for r in rows
            ],
        )
    return len(rows)


def list_rows(conn: Connection, project_id: str, name: str) -> list[AlignmentRow]:
    a = alignment_rows.c
    rows = conn.execute(
        select(alignment_rows)
        .where(a.project_id == project_id, a.criterion_name == name)
        .order_by(a.created_at, a.id)
    ).all()
    return [_row(r) for r in rows]


def label_row(conn: Connection, project_id: str, name: str, row_id: str, judgement: str | None) -> bool:
    a = alignment_rows.c
    result = conn.execute(
        update(alignment_rows)
        .where(a.project_id == project_id, a.criterion_name == name, a.id == row_id)
        .values(judgement=judgement, updated_at=now_ms())
    )
    return bool(result.rowcount)


def delete_row(conn: Connection, project_id: str, name: str, row_id: str) -> bool:
    a = alignment_rows.c
    result = conn.execute(
        delete(alignment_rows).where(a.project_id == project_id, a.criterion_name == name, a.id == row_id)
    )
    return bool(result.rowcount)


def save_judgements(conn: Connection, judgements: Sequence[RowJudgement]) -> None:
    """Store judgements, replacing earlier ones of the same version on the same rows."""
    if not judgements:
        return
    j = alignment_judgements.c
    for criterion_id in {x.criterion_id for x in judgements}:
        ids = [x.row_id for x in judgements if x.criterion_id == criterion_id]
        conn.execute(delete(alignment_judgements).where(j.criterion_id == criterion_id, j.row_id.in_(ids)))
    now = now_ms()
    conn.execute(
        insert(alignment_judgements),
        [
            {
                "row_id": x.row_id,
                "criterion_id": x.criterion_id,
                "score": x.score,
                "explanation": x.explanation,
                "error_message": x.error_message,
                "cost": x.cost,
                "created_at": now,
            }
            for x in judgements
        ],
    )


def judgements_for(conn: Connection, criterion_id: str) -> dict[str, RowJudgement]:
    j = alignment_judgements.c
    rows = conn.execute(select(alignment_judgements).where(j.criterion_id == criterion_id)).all()
    return {
        r.row_id: RowJudgement(r.row_id, r.criterion_id, r.score, r.explanation, r.error_message, r.cost)
        for r in rows
    }
