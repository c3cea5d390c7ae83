"""Dataset jobs (imports from request logs, relabeling): rows of ``dataset_jobs``.

Every read matches the project id, so a job of another project is simply not found. Counters
are written by the one task running the job, batch by batch (:func:`update_job`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, func, insert, select, update

from tunepipe.db.schema import dataset_entries, dataset_jobs
from tunepipe.domain.clock import now_ms
from tunepipe.domain.ids import uuid7

UNFINISHED = ("QUEUED", "RUNNING")


@dataclass(frozen=True, slots=True)
class DatasetJob:
    id: str
    project_id: str
    dataset_id: str
    kind: str
    status: str
    done: int
    total: int | None
    created: int
    skipped: int
    error_message: str | None
    params: dict[str, Any]
    created_at: int
    updated_at: int


def _job(row: Any) -> DatasetJob:
    return DatasetJob(
        id=row.id,
        project_id=row.project_id,
        dataset_id=row.dataset_id,
        kind=row.kind,
        status=row.status,
        done=row.done,
        total=row.total,
        created=row.created,
        skipped=row.skipped,
        error_message=row.error_message,
        params=orjson.loads(row.params),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create_job(
    engine: Engine, project_id: str, dataset_id: str, kind: str, params: dict[str, Any]
) -> DatasetJob:
    now = now_ms()
    job = DatasetJob(uuid7(), project_id, dataset_id, kind, "QUEUED", 0, None, 0, 0, None, params, now, now)
    row = {f: getattr(job, f) for f in DatasetJob.__dataclass_fields__}
    row["params"] = orjson.dumps(params).decode()
    with engine.begin() as conn:
        conn.execute(insert(dataset_jobs).values(**row))
    return job


def get_job(engine: Engine, project_id: str, dataset_id: str, job_id: str) -> DatasetJob | None:
    c = dataset_jobs.c
    query = select(dataset_jobs).where(c.project_id == project_id, c.dataset_id == dataset_id, c.id == job_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return _job(row) if row else None


def list_jobs(engine: Engine, project_id: str, dataset_id: str, *, limit: int = 100) -> list[DatasetJob]:
    """The dataset's most recent jobs, newest first."""
    c = dataset_jobs.c
    query = (
        select(dataset_jobs)
        .where(c.project_id == project_id, c.dataset_id == dataset_id)
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [_job(r) for r in conn.execute(query)]


def update_job(engine: Engine, job_id: str, **changes: Any) -> None:
    """Set ``status``, counters or ``error_message``; ``updated_at`` moves too."""
    with engine.begin() as conn:
        conn.execute(
            update(dataset_jobs).where(dataset_jobs.c.id == job_id).values(**changes, updated_at=now_ms())
        )


def interrupt_unfinished(engine: Engine, message: str) -> int:
    """Mark every QUEUED or RUNNING job ERROR (their process is gone); return how many."""
    with engine.begin() as conn:
        done = conn.execute(
            update(dataset_jobs)
            .where(dataset_jobs.c.status.in_(UNFINISHED))
            .values(status="ERROR", error_message=message, updated_at=now_ms())
        )
    return int(done.rowcount or 0)


def pair_key(input_hash: str, output: Any) -> bytes:
    """Identity of an entry for de-duplication: its input hash and its output, canonically."""
    canonical = orjson.dumps([input_hash, output], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


def entry_pair_keys(engine: Engine, project_id: str, dataset_id: str, *, page_size: int = 1000) -> set[bytes]:
    """:func:`pair_key` of every entry of the dataset (32 bytes each), read page by page."""
    e = dataset_entries.c
    keys: set[bytes] = set()
    after = ""
    with engine.connect() as conn:
        while True:
            rows = conn.execute(
                select(e.id, e.input_hash, e.output)
                .where(e.project_id == project_id, e.dataset_id == dataset_id, e.id > after)
                .order_by(e.id)
                .limit(page_size)
            ).all()
            keys.update(pair_key(r.input_hash, orjson.loads(r.output)) for r in rows)
            if len(rows) < page_size:
                return keys
            after = rows[-1].id


def count_entries(engine: Engine, project_id: str, dataset_id: str, split: str | None) -> int:
    e = dataset_entries.c
    conds = [e.project_id == project_id, e.dataset_id == dataset_id]
    if split is not None:
        conds.append(e.split == split)
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(*conds)).scalar_one())


def entry_id_page(
    engine: Engine, project_id: str, dataset_id: str, split: str | None, after: str, limit: int
) -> list[str]:
    """Ids of the dataset's entries (of one split, or all) after ``after``, by id."""
    e = dataset_entries.c
    conds = [e.project_id == project_id, e.dataset_id == dataset_id, e.id > after]
    if split is not None:
        conds.append(e.split == split)
    with engine.connect() as conn:
        return list(conn.execute(select(e.id).where(*conds).order_by(e.id).limit(limit)).scalars())
