"""Fine-tunes: rows of ``fine_tunes`` and what belongs to one (its copied training rows, its
test-set outputs, its trained files).

Reads scoped to a caller match the project id; the worker's reads (:func:`get_by_id`) are not
scoped, since a worker serves every project.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tunepipe.db.schema import (
    dataset_entries,
    fine_tune_artifacts,
    fine_tune_entries,
    fine_tune_test_outputs,
    fine_tunes,
)
from tunepipe.domain.clock import now_ms
from tunepipe.domain.fine_tunes import DatasetRows, FineTune, TestOutput, follow_job
from tunepipe.domain.jobs import Job
from tunepipe.errors import Conflict

JSON_COLUMNS = ("training_config", "hyperparameters", "pruning_rule_ids", "metrics")


def _fine_tune(row: Any) -> FineTune:
    values = dict(row._mapping)
    for col in JSON_COLUMNS:
        values[col] = orjson.loads(values[col]) if values[col] is not None else None
    return FineTune(**values)


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def create(conn: Connection, ft: FineTune) -> None:
    """Insert ``ft``; a taken slug raises :class:`Conflict`."""
    row = {f: getattr(ft, f) for f in FineTune.__dataclass_fields__}
    for col in JSON_COLUMNS:
        row[col] = _dumps(row[col])
    try:
        conn.execute(insert(fine_tunes).values(**row))
    except IntegrityError as exc:
        raise slug_conflict(ft.slug) from exc


def slug_conflict(slug: str) -> Conflict:
    return Conflict(f"A model with the slug {slug!r} already exists", param="slug", code="slug_taken")


def get_by_slug(conn: Connection, project_id: str, slug: str) -> FineTune | None:
    c = fine_tunes.c
    row = conn.execute(select(fine_tunes).where(c.project_id == project_id, c.slug == slug)).first()
    return _fine_tune(row) if row else None


def get_by_id(conn: Connection, fine_tune_id: str, project_id: str | None = None) -> FineTune | None:
    c = fine_tunes.c
    query = select(fine_tunes).where(c.id == fine_tune_id)
    if project_id is not None:
        query = query.where(c.project_id == project_id)
    row = conn.execute(query).first()
    return _fine_tune(row) if row else None


def slug_taken(conn: Connection, slug: str) -> bool:
    return conn.execute(select(fine_tunes.c.id).where(fine_tunes.c.slug == slug)).first() is not None


def list_for_project(conn: Connection, project_id: str) -> list[FineTune]:
    c = fine_tunes.c
    query = select(fine_tunes).where(c.project_id == project_id).order_by(c.created_at.desc(), c.id.desc())
    return [_fine_tune(r) for r in conn.execute(query)]


def follow(conn: Connection, job: Job) -> None:
    """Bring the fine-tune in line with its train job (:func:`~tunepipe.domain.fine_tunes.follow_job`):
    called in the transaction that changed the job, so the two never disagree."""
    following = follow_job(job)
    c = fine_tunes.c
    values: dict[str, Any] = {
        "status": following.status.value,
        "error_message": following.error_message,
        "updated_at": now_ms(),
    }
    if following.started_at is not None:
        values["training_started_at"] = func.coalesce(c.training_started_at, following.started_at)
    if following.finished_at is not None:
        values["training_finished_at"] = following.finished_at
    if following.metrics is not None:
        values["metrics"] = _dumps(following.metrics)
    conn.execute(update(fine_tunes).where(c.id == job.subject_id).values(**values))


def update_fine_tune(conn: Connection, fine_tune_id: str, **changes: Any) -> None:
    """Set columns (JSON ones given as Python values); ``updated_at`` moves too."""
    for col in JSON_COLUMNS:
        if col in changes:
            changes[col] = _dumps(changes[col])
    conn.execute(
        update(fine_tunes).where(fine_tunes.c.id == fine_tune_id).values(**changes, updated_at=now_ms())
    )


def delete_fine_tune(conn: Connection, fine_tune_id: str) -> bool:
    """Delete the model and everything of it (rows, outputs, artifacts cascade)."""
    for table in (fine_tune_entries, fine_tune_test_outputs, fine_tune_artifacts):
        conn.execute(delete(table).where(table.c.fine_tune_id == fine_tune_id))
    return bool(conn.execute(delete(fine_tunes).where(fine_tunes.c.id == fine_tune_id)).rowcount)


# Training rows


def add_entries(conn: Connection, fine_tune_id: str, rows: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
    """Store ``(entry_id, split, row)`` triples; ``row`` is the trainer's form of the entry."""
    if not rows:
        return
    values = [
        {"fine_tune_id": fine_tune_id, "entry_id": e, "split": s, "row": orjson.dumps(r).decode()}
        for e, s, r in rows
    ]
    conn.execute(insert(fine_tune_entries), values)


def iter_entries(
    conn: Connection, fine_tune_id: str, split: str, *, page_size: int = 1000
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(entry_id, row)`` of one split, by entry id, read page by page."""
    c = fine_tune_entries.c
    after = ""
    while True:
        rows = conn.execute(
            select(c.entry_id, c.row)
            .where(c.fine_tune_id == fine_tune_id, c.split == split, c.entry_id > after)
            .order_by(c.entry_id)
            .limit(page_size)
        ).all()
        for r in rows:
            yield r.entry_id, orjson.loads(r.row)
        if len(rows) < page_size:
            return
        after = rows[-1].entry_id


# Test-set outputs


def save_test_outputs(conn: Connection, fine_tune_id: str, outputs: Sequence[TestOutput]) -> None:
    """Store outputs, replacing earlier ones for the same entries (a retried run)."""
    if not outputs:
        return
    c = fine_tune_test_outputs.c
    now = now_ms()
    conn.execute(
        delete(fine_tune_test_outputs).where(
            c.fine_tune_id == fine_tune_id, c.entry_id.in_([o.entry_id for o in outputs])
        )
    )
    conn.execute(
        insert(fine_tune_test_outputs),
        [
            {
                "fine_tune_id": fine_tune_id,
                "entry_id": o.entry_id,
                "output": _dumps(o.output),
                "finish_reason": o.finish_reason,
                "error_message": o.error_message,
                "exact_match": o.exact_match,
                "prompt_tokens": o.prompt_tokens,
                "completion_tokens": o.completion_tokens,
                "created_at": now,
            }
            for o in outputs
        ],
    )


def list_test_outputs(conn: Connection, fine_tune_id: str) -> list[TestOutput]:
    c = fine_tune_test_outputs.c
    rows = conn.execute(
        select(fine_tune_test_outputs).where(c.fine_tune_id == fine_tune_id).order_by(c.entry_id)
    ).all()
    return [
        TestOutput(
            entry_id=r.entry_id,
            output=orjson.loads(r.output) if r.output is not None else None,
            finish_reason=r.finish_reason,
            error_message=r.error_message,
            exact_match=r.exact_match,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
        )
        for r in rows
    ]


# Artifacts


def save_artifact(conn: Connection, fine_tune_id: str, name: str, data: bytes, sha256: str) -> None:
    c = fine_tune_artifacts.c
    conn.execute(delete(fine_tune_artifacts).where(c.fine_tune_id == fine_tune_id, c.name == name))
    conn.execute(
        insert(fine_tune_artifacts).values(
            fine_tune_id=fine_tune_id,
            name=name,
            data=data,
            sha256=sha256,
            size=len(data),
            created_at=now_ms(),
        )
    )


def artifact_sha(conn: Connection, fine_tune_id: str, name: str) -> str | None:
    c = fine_tune_artifacts.c
    return conn.execute(
        select(c.sha256).where(c.fine_tune_id == fine_tune_id, c.name == name)
    ).scalar_one_or_none()


def load_artifact(conn: Connection, fine_tune_id: str, name: str) -> bytes | None:
    c = fine_tune_artifacts.c
    data = conn.execute(
        select(c.data).where(c.fine_tune_id == fine_tune_id, c.name == name)
    ).scalar_one_or_none()
    return bytes(data) if data is not None else None


# What a new fine-tune would train on


def count_dataset_rows(conn: Connection, project_id: str, dataset_id: str) -> DatasetRows:
    """Entries of a dataset by split, counted in the database (checked before any copying)."""
    e = dataset_entries.c
    where = (e.dataset_id == dataset_id, e.project_id == project_id)
    by_split: dict[str, int] = dict(
        conn.execute(select(e.split, func.count()).where(*where).group_by(e.split)).tuples().all()
    )
    pairs = conn.execute(
        select(func.count()).where(*where, e.split == "TRAIN", e.rejected_message.is_not(None))
    ).scalar_one()
    return DatasetRows(
        train=int(by_split.get("TRAIN", 0)), test=int(by_split.get("TEST", 0)), train_preference=int(pairs)
    )
