"""Datasets and their entries, every query scoped by project.

Entries are read oldest first by cursor on ``(created_at, id)``; ids of one insert are handed
out in ascending order, so an upload reads back in file order. "Text contains" is a
case-insensitive ``LIKE`` over the stored JSON text of the messages and the output.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.sql import Select

from tunepipe.db.schema import dataset_entries, datasets
from tunepipe.domain.clock import now_ms
from tunepipe.domain.dataset_entries import EntryData
from tunepipe.domain.datasets import Dataset, EntryFilter, NewEntry, StoredEntry
from tunepipe.domain.ids import uuid7


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _count() -> Any:
    e = dataset_entries.c
    return select(func.count()).where(e.dataset_id == datasets.c.id).scalar_subquery().label("entry_count")


def _to_dataset(row: Any) -> Dataset:
    return Dataset(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        train_ratio=row.train_ratio,
        created_at=row.created_at,
        updated_at=row.updated_at,
        entry_count=row.entry_count,
    )


def create_dataset(conn: Connection, project_id: str, name: str, train_ratio: float) -> Dataset:
    now = now_ms()
    ds = Dataset(uuid7(), project_id, name, train_ratio, now, now)
    conn.execute(
        insert(datasets).values(
            id=ds.id,
            project_id=project_id,
            name=name,
            train_ratio=train_ratio,
            created_at=now,
            updated_at=now,
        )
    )
    return ds


def list_datasets(conn: Connection, project_id: str) -> list[Dataset]:
    query = (
        select(datasets, _count())
        .where(datasets.c.project_id == project_id)
        .order_by(datasets.c.created_at.desc(), datasets.c.id.desc())
    )
    return [_to_dataset(r) for r in conn.execute(query)]


def get_dataset(conn: Connection, project_id: str, dataset_id: str) -> Dataset | None:
    query = select(datasets, _count()).where(datasets.c.project_id == project_id, datasets.c.id == dataset_id)
    row = conn.execute(query).first()
    return _to_dataset(row) if row else None


def update_dataset(conn: Connection, project_id: str, dataset_id: str, changes: dict[str, Any]) -> bool:
    c = datasets.c
    done = conn.execute(
        update(datasets)
        .where(c.project_id == project_id, c.id == dataset_id)
        .values(**changes, updated_at=now_ms())
    )
    return bool(done.rowcount)


def delete_dataset(conn: Connection, project_id: str, dataset_id: str) -> bool:
    c = datasets.c
    # Entries first: SQLite enforces the cascade only with the pragma on, Postgres always.
    if conn.execute(select(c.id).where(c.project_id == project_id, c.id == dataset_id)).first() is None:
        return False
    conn.execute(delete(dataset_entries).where(dataset_entries.c.dataset_id == dataset_id))
    conn.execute(delete(datasets).where(c.id == dataset_id))
    return True


def _entry_row(dataset_id: str, project_id: str, entry: NewEntry, entry_id: str, now: int) -> dict[str, Any]:
    d = entry.data
    return {
        "id": entry_id,
        "dataset_id": dataset_id,
        "project_id": project_id,
        "split": d.split,
        "messages": _dumps(d.messages),
        "output": _dumps(d.output),
        "tools": _dumps(d.tools),
        "tool_choice": _dumps(d.tool_choice),
        "response_format": _dumps(d.response_format),
        "rejected_message": _dumps(d.rejected_message),
        "metadata": _dumps(d.metadata or None),
        "original_output": None,
        "provenance": entry.provenance,
        "logged_call_id": entry.logged_call_id,
        "job_id": entry.job_id,
        "input_hash": d.input_hash,
        "created_at": now,
        "updated_at": now,
    }


def insert_entries(conn: Connection, project_id: str, dataset_id: str, entries: Sequence[NewEntry]) -> int:
    """Insert the entries; the dataset's ``updated_at`` moves too."""
    if not entries:
        return 0
    now = now_ms()
    ids = sorted(uuid7() for _ in entries)
    rows = [_entry_row(dataset_id, project_id, e, i, now) for e, i in zip(entries, ids, strict=True)]
    conn.execute(insert(dataset_entries), rows)
    conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(updated_at=now))
    return len(rows)


def insert_entry_batches(
    conn: Connection, project_id: str, dataset_id: str, batches: Iterable[Sequence[NewEntry]]
) -> int:
    """Insert every batch in one transaction (all or nothing), ids ascending across batches.

    ``batches`` is consumed lazily inside the transaction, so a caller can parse a file batch
    by batch and memory stays bounded by one batch. Every row gets the same ``created_at``, so
    reading back in file order rests on the ids: each batch's ids must sort after the last one's.
    """
    now = now_ms()
    created = 0
    last_id = ""
    for batch in batches:
        if not batch:
            continue
        ids = sorted(uuid7() for _ in batch)
        while ids[0] <= last_id:  # same millisecond as the previous batch: wait it out
            time.sleep(0.001)
            ids = sorted(uuid7() for _ in batch)
        rows = [_entry_row(dataset_id, project_id, e, i, now) for e, i in zip(batch, ids, strict=True)]
        conn.execute(insert(dataset_entries), rows)
        last_id = ids[-1]
        created += len(rows)
    if created:
        conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(updated_at=now))
    return created


def _to_entry(row: Any) -> StoredEntry:
    return StoredEntry(
        id=row.id,
        dataset_id=row.dataset_id,
        data=EntryData(
            messages=_loads(row.messages),
            output=_loads(row.output),
            tools=_loads(row.tools),
            tool_choice=_loads(row.tool_choice),
            response_format=_loads(row.response_format),
            rejected_message=_loads(row.rejected_message),
            split=row.split,
            metadata=_loads(row.metadata) or {},
        ),
        provenance=row.provenance,
        logged_call_id=row.logged_call_id,
        input_hash=row.input_hash,
        original_output=_loads(row.original_output),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def encode_cursor(created_at: int, entry_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}:{entry_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ``ValueError`` for a cursor this server did not make."""
    at, sep, entry_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    if not sep or not entry_id or "\x00" in entry_id or abs(at_ms := int(at)) >= 2**63:
        raise ValueError("not an entry cursor")
    return at_ms, entry_id


def _page_query(
    project_id: str, dataset_id: str, f: EntryFilter, after: tuple[int, str] | None, limit: int
) -> Select[Any]:
    e = dataset_entries.c
    conds: list[Any] = [e.project_id == project_id, e.dataset_id == dataset_id]
    if f.split is not None:
        conds.append(e.split == f.split)
    if f.provenance is not None:
        conds.append(e.provenance == f.provenance)
    if f.contains:
        needle = f.contains.lower()
        conds.append(
            or_(
                func.lower(e.messages).contains(needle, autoescape=True),
                func.lower(e.output).contains(needle, autoescape=True),
            )
        )
    if after is not None:
        at, entry_id = after
        conds.append(or_(e.created_at > at, and_(e.created_at == at, e.id > entry_id)))
    return select(dataset_entries).where(*conds).order_by(e.created_at, e.id).limit(limit)


def list_entries(
    conn: Connection,
    project_id: str,
    dataset_id: str,
    f: EntryFilter,
    *,
    after: tuple[int, str] | None = None,
    limit: int = 50,
) -> tuple[list[StoredEntry], str | None]:
    """One page, oldest first, and the next page's cursor (None on the last page)."""
    rows = conn.execute(_page_query(project_id, dataset_id, f, after, limit + 1)).all()
    entries = [_to_entry(r) for r in rows[:limit]]
    if len(rows) <= limit:
        return entries, None
    return entries, encode_cursor(entries[-1].created_at, entries[-1].id)


def iter_entries(
    conn: Connection, project_id: str, dataset_id: str, f: EntryFilter, *, page_size: int = 500
) -> Iterator[StoredEntry]:
    """Every matching entry, oldest first, page by page (bounded memory)."""
    after: tuple[int, str] | None = None
    while True:
        page, cursor = list_entries(conn, project_id, dataset_id, f, after=after, limit=page_size)
        yield from page
        if cursor is None:
            return
        after = (page[-1].created_at, page[-1].id)


def get_entry(conn: Connection, project_id: str, dataset_id: str, entry_id: str) -> StoredEntry | None:
    e = dataset_entries.c
    query = select(dataset_entries).where(
        e.project_id == project_id, e.dataset_id == dataset_id, e.id == entry_id
    )
    row = conn.execute(query).first()
    return _to_entry(row) if row else None


def update_entry(
    conn: Connection, project_id: str, dataset_id: str, entry_id: str, changes: dict[str, Any]
) -> bool:
    """``changes`` maps columns to Python values; JSON columns are encoded here."""
    json_columns = {"messages", "output", "tools", "tool_choice", "response_format", "rejected_message"}
    json_columns |= {"metadata", "original_output"}
    values = {k: (_dumps(v) if k in json_columns else v) for k, v in changes.items()}
    e = dataset_entries.c
    now = now_ms()
    done = conn.execute(
        update(dataset_entries)
        .where(e.project_id == project_id, e.dataset_id == dataset_id, e.id == entry_id)
        .values(**values, updated_at=now)
    )
    if done.rowcount:
        conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(updated_at=now))
    return bool(done.rowcount)


def delete_job_entries(conn: Connection, dataset_id: str, job_id: str) -> int:
    """Remove what an earlier attempt of an import job created (its retry starts afresh)."""
    e = dataset_entries.c
    return int(
        conn.execute(delete(dataset_entries).where(e.dataset_id == dataset_id, e.job_id == job_id)).rowcount
    )


def delete_entry(conn: Connection, project_id: str, dataset_id: str, entry_id: str) -> bool:
    e = dataset_entries.c
    done = conn.execute(
        delete(dataset_entries).where(
            e.project_id == project_id, e.dataset_id == dataset_id, e.id == entry_id
        )
    )
    return bool(done.rowcount)


def pair_key(input_hash: str, output: Any) -> bytes:
    """Identity of an entry for de-duplication: its input hash and its output, canonically."""
    canonical = orjson.dumps([input_hash, output], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


def entry_pair_keys(
    conn: Connection, project_id: str, dataset_id: str, *, page_size: int = 1000
) -> set[bytes]:
    """:func:`pair_key` of every entry of the dataset (32 bytes each), read page by page."""
    e = dataset_entries.c
    keys: set[bytes] = set()
    after = ""
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


def count_entries(conn: Connection, project_id: str, dataset_id: str, split: str | None) -> int:
    e = dataset_entries.c
    conds = [e.project_id == project_id, e.dataset_id == dataset_id]
    if split is not None:
        conds.append(e.split == split)
    return int(conn.execute(select(func.count()).where(*conds)).scalar_one())


def entry_id_page(
    conn: Connection, project_id: str, dataset_id: str, split: str | None, after: str, limit: int
) -> list[str]:
    """Ids of the dataset's entries (of one split, or all) after ``after``, by id."""
    e = dataset_entries.c
    conds = [e.project_id == project_id, e.dataset_id == dataset_id, e.id > after]
    if split is not None:
        conds.append(e.split == split)
    return list(conn.execute(select(e.id).where(*conds).order_by(e.id).limit(limit)).scalars())


def entries_by_id(
    conn: Connection, project_id: str, dataset_id: str, ids: Sequence[str]
) -> dict[str, StoredEntry]:
    """The entries among ``ids`` that still exist, by id."""
    e = dataset_entries.c
    out: dict[str, StoredEntry] = {}
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(dataset_entries).where(
                e.project_id == project_id,
                e.dataset_id == dataset_id,
                e.id.in_(list(ids[start : start + 500])),
            )
        )
        out.update((r.id, _to_entry(r)) for r in rows)
    return out
