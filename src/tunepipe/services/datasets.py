"""Use cases over datasets: create, rename and delete them; add, list, edit and delete entries.

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
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Engine

from tunepipe.db import datasets as repo
from tunepipe.db.datasets import Dataset, EntryFilter, NewEntry, StoredEntry
from tunepipe.db.records import Principal
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
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.datasets import UpdateEntryRequest
from tunepipe.services.dataset_files import UploadResult, upload_jsonl


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dataset_view(ds: Dataset) -> dict[str, Any]:
    """OpenPipe's Dataset object, plus tunepipe's ``train_ratio``."""
    return {
        "object": "dataset",
        "id": ds.id,
        "name": ds.name,
        "created": iso(ds.created_at),
        "updated": iso(ds.updated_at),
        "dataset_entry_count": ds.entry_count,
        "fine_tune_count": 0,
        "train_ratio": ds.train_ratio,
    }


def unstable_dataset_view(ds: Dataset) -> dict[str, Any]:
    return {
        "id": ds.id,
        "name": ds.name,
        "createdAt": iso(ds.created_at),
        "updatedAt": iso(ds.updated_at),
        "datasetEntryCount": ds.entry_count,
        "fineTuneCount": 0,
    }


def entry_view(entry: StoredEntry) -> dict[str, Any]:
    d = entry.data
    return {
        "object": "dataset.entry",
        "id": entry.id,
        "dataset_id": entry.dataset_id,
        "split": d.split,
        "messages": [*d.messages, d.output],
        "output": d.output,
        "tools": d.tools,
        "tool_choice": d.tool_choice,
        "response_format": d.response_format,
        "rejected_message": d.rejected_message,
        "original_output": entry.original_output,
        "metadata": d.metadata,
        "provenance": entry.provenance,
        "logged_call_id": entry.logged_call_id,
        "input_hash": entry.input_hash,
        "created": iso(entry.created_at),
        "updated": iso(entry.updated_at),
    }


def _no_nul(value: str, what: str) -> None:
    # No id has one, and Postgres refuses NUL in a query parameter.
    if "\x00" in value:
        raise NotFound(f"No {what} {value!r} in this project")


class DatasetService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # Datasets

    async def create(self, principal: Principal, name: str, train_ratio: float | None = None) -> Dataset:
        if "\x00" in name:
            raise InvalidRequest("Dataset names cannot contain NUL characters", param="name")
        ratio = DEFAULT_TRAIN_RATIO if train_ratio is None else train_ratio
        return await asyncio.to_thread(repo.create_dataset, self._engine, principal.project.id, name, ratio)

    async def list_all(self, principal: Principal) -> list[Dataset]:
        return await asyncio.to_thread(repo.list_datasets, self._engine, principal.project.id)

    async def get(self, principal: Principal, dataset_id: str) -> Dataset:
        _no_nul(dataset_id, "dataset")
        ds = await asyncio.to_thread(repo.get_dataset, self._engine, principal.project.id, dataset_id)
        if ds is None:
            raise NotFound(f"No dataset {dataset_id!r} in this project")
        return ds

    async def update(
        self, principal: Principal, dataset_id: str, *, name: str | None, train_ratio: float | None
    ) -> Dataset:
        changes: dict[str, Any] = {}
        if name is not None:
            if "\x00" in name:
                raise InvalidRequest("Dataset names cannot contain NUL characters", param="name")
            changes["name"] = name
        if train_ratio is not None:
            changes["train_ratio"] = train_ratio
        await self.get(principal, dataset_id)
        if changes:
            await asyncio.to_thread(
                repo.update_dataset, self._engine, principal.project.id, dataset_id, changes
            )
        return await self.get(principal, dataset_id)

    async def delete(self, principal: Principal, dataset_id: str) -> bool:
        _no_nul(dataset_id, "dataset")
        deleted = await asyncio.to_thread(repo.delete_dataset, self._engine, principal.project.id, dataset_id)
        if not deleted:
            raise NotFound(f"No dataset {dataset_id!r} in this project")
        return True

    # Entries

    async def add_entries(
        self, principal: Principal, dataset_id: str, raw: Sequence[Any], *, provenance: str = "API"
    ) -> tuple[int, list[tuple[int, str]]]:
        """Create the valid entries; return how many, and ``(index, message)`` for the others."""
        ds = await self.get(principal, dataset_id)
        valid: list[NewEntry] = []
        errors: list[tuple[int, str]] = []
        for index, item in enumerate(raw):
            try:
                valid.append(NewEntry(with_split(parse_entry(item), ds.train_ratio), provenance))
            except EntryInvalid as exc:
                errors.append((index, str(exc)))
        created = await asyncio.to_thread(
            repo.insert_entries, self._engine, principal.project.id, ds.id, valid
        )
        return created, errors

    async def page(
        self, principal: Principal, dataset_id: str, f: EntryFilter, cursor: str | None, limit: int
    ) -> tuple[list[StoredEntry], str | None]:
        if f.split is not None and f.split not in SPLITS:
            raise InvalidRequest('`split` must be "TRAIN" or "TEST"', param="split")
        if f.provenance is not None and f.provenance not in PROVENANCES:
            raise InvalidRequest(f"`provenance` must be one of {', '.join(PROVENANCES)}", param="provenance")
        if f.contains is not None and "\x00" in f.contains:
            raise InvalidRequest("`contains` cannot contain NUL characters", param="contains")
        after = None
        if cursor:
            try:
                after = repo.decode_cursor(cursor)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequest("Invalid cursor", param="cursor") from exc
        ds = await self.get(principal, dataset_id)
        return await asyncio.to_thread(
            repo.list_entries, self._engine, principal.project.id, ds.id, f, after=after, limit=limit
        )

    async def get_entry(self, principal: Principal, dataset_id: str, entry_id: str) -> StoredEntry:
        _no_nul(dataset_id, "dataset")
        _no_nul(entry_id, "entry")
        entry = await asyncio.to_thread(
            repo.get_entry, self._engine, principal.project.id, dataset_id, entry_id
        )
        if entry is None:
            raise NotFound(f"No entry {entry_id!r} in dataset {dataset_id!r}")
        return entry

    async def update_entry(
        self, principal: Principal, dataset_id: str, entry_id: str, body: UpdateEntryRequest
    ) -> StoredEntry:
        entry = await self.get_entry(principal, dataset_id, entry_id)
        try:
            changes = entry_changes(entry, body)
        except EntryInvalid as exc:
            raise InvalidRequest(str(exc)) from exc
        if changes:
            await asyncio.to_thread(
                repo.update_entry, self._engine, principal.project.id, dataset_id, entry_id, changes
            )
        return await self.get_entry(principal, dataset_id, entry_id)

    async def delete_entry(self, principal: Principal, dataset_id: str, entry_id: str) -> None:
        _no_nul(dataset_id, "dataset")
        _no_nul(entry_id, "entry")
        if not await asyncio.to_thread(
            repo.delete_entry, self._engine, principal.project.id, dataset_id, entry_id
        ):
            raise NotFound(f"No entry {entry_id!r} in dataset {dataset_id!r}")

    async def upload(self, principal: Principal, dataset_id: str, file: BinaryIO) -> UploadResult:
        """A JSONL file, all or nothing (:mod:`tunepipe.services.dataset_files`)."""
        ds = await self.get(principal, dataset_id)
        return await asyncio.to_thread(upload_jsonl, self._engine, ds, file)

    def export_lines(self, principal: Principal, dataset_id: str, *, include_split: bool) -> Iterator[bytes]:
        """JSONL lines (spec D), read page by page (blocking: run it in a thread)."""
        for entry in repo.iter_entries(self._engine, principal.project.id, dataset_id, EntryFilter()):
            yield orjson.dumps(export_line(entry.data, include_split=include_split)) + b"\n"


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


def check_metadata_types(entries: Sequence[Any]) -> None:
    """OpenPipe answers a non-string metadata value with a 400 for the whole call."""
    for index, item in enumerate(entries):
        metadata = item.get("metadata") if isinstance(item, dict) else None
        if isinstance(metadata, dict):
            for key, value in metadata.items():
                if not isinstance(value, str):
                    loc = f"entries.{index}.metadata.{key}"
                    raise InvalidRequest(
                        f"Input validation failed: `{loc}`: metadata values must be strings", param=loc
                    )
