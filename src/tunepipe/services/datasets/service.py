"""Use cases over datasets: create, rename and delete them; add, list, edit and delete entries;
upload and export JSONL.

Entries are validated one by one (:func:`~tunepipe.domain.dataset_entries.parse_entry`); a call
that adds entries creates the valid ones and reports the others by index, as OpenPipe does. An
entry sent without a split gets one from its input hash and the dataset's train ratio.

Editing an entry's output keeps the output it replaced in ``original_output`` (the first one
only: it is the pre-edit/pre-relabel output that can become a DPO ``rejected_message``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Connection

from tunepipe.db import datasets as repo
from tunepipe.db.database import Database
from tunepipe.domain.dataset_entries import (
    DEFAULT_TRAIN_RATIO,
    PROVENANCES,
    SPLITS,
    EntryData,
    EntryInvalid,
    assign_split,
    check_assistant,
    check_messages,
    check_metadata,
    check_split,
    export_line,
    parse_entry,
)
from tunepipe.domain.datasets import Dataset, EntryFilter, NewEntry, StoredEntry
from tunepipe.domain.jobs import Job
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.datasets import UpdateEntryRequest
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.datasets.upload import Progress, UploadResult, upload_jsonl
from tunepipe.services.jobs import queue

EXPORT_PAGE = 500


def dataset_in(conn: Connection, principal: Principal, dataset_id: str) -> Dataset:
    """The project's dataset ``dataset_id``; NotFound otherwise (any use case's first step)."""
    ds = repo.get_dataset(conn, principal.project.id, dataset_id)
    if ds is None:
        raise NotFound(f"No dataset {dataset_id!r} in this project")
    return ds


class DatasetService:
    def __init__(self, db: Database) -> None:
        self._db = db

    # Datasets

    async def create(self, principal: Principal, name: str, train_ratio: float | None = None) -> Dataset:
        ratio = DEFAULT_TRAIN_RATIO if train_ratio is None else train_ratio
        return await self._db.run(repo.create_dataset, principal.project.id, name, ratio)

    async def all(self, principal: Principal) -> list[Dataset]:
        return await self._db.run(repo.list_datasets, principal.project.id)

    async def get(self, principal: Principal, dataset_id: str) -> Dataset:
        return await self._db.run(dataset_in, principal, dataset_id)

    async def update(
        self, principal: Principal, dataset_id: str, *, name: str | None, train_ratio: float | None
    ) -> Dataset:
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if train_ratio is not None:
            changes["train_ratio"] = train_ratio

        def update(conn: Connection) -> Dataset:
            dataset_in(conn, principal, dataset_id)
            if changes:
                repo.update_dataset(conn, principal.project.id, dataset_id, changes)
            return dataset_in(conn, principal, dataset_id)

        return await self._db.run(update)

    async def delete(self, principal: Principal, dataset_id: str) -> None:
        if not await self._db.run(repo.delete_dataset, principal.project.id, dataset_id):
            raise NotFound(f"No dataset {dataset_id!r} in this project")

    async def split_counts(
        self, principal: Principal, dataset_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """Per dataset of the project, its entries by split (``{"TRAIN": n, "TEST": m}``)."""

        def counts(conn: Connection) -> dict[str, dict[str, int]]:
            pid = principal.project.id
            return {d: {s: repo.count_entries(conn, pid, d, s) for s in SPLITS} for d in dataset_ids}

        return await self._db.run(counts)

    # Entries

    async def add_entries(
        self, principal: Principal, dataset_id: str, raw: Sequence[Any], *, provenance: str = "API"
    ) -> tuple[int, list[tuple[int, str]]]:
        """Create the valid entries; return how many, and ``(index, message)`` for the others."""

        def add(conn: Connection) -> tuple[int, list[tuple[int, str]]]:
            ds = dataset_in(conn, principal, dataset_id)
            valid: list[NewEntry] = []
            errors: list[tuple[int, str]] = []
            for index, item in enumerate(raw):
                try:
                    valid.append(NewEntry(with_split(parse_entry(item), ds.train_ratio), provenance))
                except EntryInvalid as exc:
                    errors.append((index, str(exc)))
            return repo.insert_entries(conn, principal.project.id, ds.id, valid), errors

        return await self._db.run(add)

    async def page(
        self, principal: Principal, dataset_id: str, f: EntryFilter, cursor: str | None, limit: int
    ) -> tuple[list[StoredEntry], str | None]:
        if f.split is not None and f.split not in SPLITS:
            raise InvalidRequest('`split` must be "TRAIN" or "TEST"', param="split")
        if f.provenance is not None and f.provenance not in PROVENANCES:
            raise InvalidRequest(f"`provenance` must be one of {', '.join(PROVENANCES)}", param="provenance")
        after = None
        if cursor:
            try:
                after = repo.decode_cursor(cursor)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequest("Invalid cursor", param="cursor") from exc

        def page(conn: Connection) -> tuple[list[StoredEntry], str | None]:
            ds = dataset_in(conn, principal, dataset_id)
            return repo.list_entries(conn, principal.project.id, ds.id, f, after=after, limit=limit)

        return await self._db.run(page)

    async def get_entry(self, principal: Principal, dataset_id: str, entry_id: str) -> StoredEntry:
        return await self._db.run(_entry_in, principal, dataset_id, entry_id)

    async def update_entry(
        self, principal: Principal, dataset_id: str, entry_id: str, body: UpdateEntryRequest
    ) -> StoredEntry:
        def update(conn: Connection) -> StoredEntry:
            entry = _entry_in(conn, principal, dataset_id, entry_id)
            try:
                changes = entry_changes(entry, body)
            except EntryInvalid as exc:
                raise InvalidRequest(str(exc)) from exc
            if changes:
                repo.update_entry(conn, principal.project.id, dataset_id, entry_id, changes)
            return _entry_in(conn, principal, dataset_id, entry_id)

        return await self._db.run(update)

    async def delete_entry(self, principal: Principal, dataset_id: str, entry_id: str) -> None:
        if not await self._db.run(repo.delete_entry, principal.project.id, dataset_id, entry_id):
            raise NotFound(f"No entry {entry_id!r} in dataset {dataset_id!r}")

    # Files

    async def upload(
        self,
        principal: Principal,
        dataset_id: str,
        file: BinaryIO,
        *,
        on_check: Progress | None = None,
        on_insert: Progress | None = None,
    ) -> UploadResult:
        """A JSONL file, all or nothing (:mod:`tunepipe.services.datasets.upload`)."""

        def upload() -> UploadResult:  # one thread hop: the dataset's check, then both passes
            ds = self._db.run_sync(dataset_in, principal, dataset_id)
            return upload_jsonl(self._db, ds, file, on_check=on_check, on_insert=on_insert)

        return await asyncio.to_thread(upload)

    def export_lines(self, principal: Principal, dataset_id: str, *, include_split: bool) -> Iterator[bytes]:
        """JSONL lines (spec D), one short read per page (blocking: run it in a thread)."""
        f = EntryFilter()
        after: tuple[int, str] | None = None
        while True:
            page, cursor = self._db.run_sync(
                repo.list_entries, principal.project.id, dataset_id, f, after=after, limit=EXPORT_PAGE
            )
            for entry in page:
                yield orjson.dumps(export_line(entry.data, include_split=include_split)) + b"\n"
            if cursor is None:
                return
            after = (page[-1].created_at, page[-1].id)


async def queue_dataset_job(
    db: Database,
    feed: ChangeFeed | None,
    principal: Principal,
    dataset_id: str,
    kind: str,
    params: dict[str, Any],
    *,
    max_attempts: int,
) -> Job:
    """Queue a job over the project's dataset (one transaction with the dataset's check) and
    wake the workers."""

    def start(conn: Connection) -> Job:
        ds = dataset_in(conn, principal, dataset_id)
        return queue.enqueue(conn, kind, ds.project_id, ds.id, params=params, max_attempts=max_attempts)

    job = await db.run(start)
    if feed is not None:
        feed.changed(queue.SCOPE, job.kind)
    return job


def _entry_in(conn: Connection, principal: Principal, dataset_id: str, entry_id: str) -> StoredEntry:
    entry = repo.get_entry(conn, principal.project.id, dataset_id, entry_id)
    if entry is None:
        raise NotFound(f"No entry {entry_id!r} in dataset {dataset_id!r}")
    return entry


def with_split(data: EntryData, train_ratio: float) -> EntryData:
    if data.split is not None:
        return data
    return dataclasses.replace(data, split=assign_split(data.input_hash, train_ratio))


def entry_changes(entry: StoredEntry, body: UpdateEntryRequest) -> dict[str, Any]:
    """The columns an edit changes, validated; a changed output keeps the first original."""
    sent = body.model_fields_set
    changes: dict[str, Any] = {}
    output: dict[str, Any] | None = None
    if "messages" in sent and body.messages is not None:
        messages = check_messages(body.messages)
        changes["messages"] = messages[:-1]
        output = messages[-1]
        data = dataclasses.replace(entry.data, messages=messages[:-1])
        changes["input_hash"] = data.input_hash
    if "output" in sent and body.output is not None:
        output = check_assistant(body.output, "output")
    if output is not None and output != entry.data.output:
        changes["output"] = output
        if entry.original_output is None:
            changes["original_output"] = entry.data.output
    if "split" in sent:
        split = check_split(body.split)
        if split is None:
            raise EntryInvalid('`split` must be "TRAIN" or "TEST"')
        changes["split"] = split
    if "rejected_message" in sent:
        rejected = body.rejected_message
        changes["rejected_message"] = (
            check_assistant(rejected, "rejected_message") if rejected is not None else None
        )
    if "metadata" in sent:
        changes["metadata"] = check_metadata(body.metadata) or None
    return changes
