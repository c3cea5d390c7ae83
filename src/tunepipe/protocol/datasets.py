"""The dataset API on the wire: OpenPipe's bodies (``/datasets``, the deprecated
``/unstable/dataset*``), tunepipe's additions (dataset settings, entry edits, imports from logs,
relabeling), and how datasets and entries are shown.

Entries stay untyped JSON in request bodies: each one is validated on its own by
:mod:`tunepipe.domain.dataset_entries`, so one bad entry is reported by index instead of failing
the whole request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.datasets import Dataset, StoredEntry
from tunepipe.errors import InvalidRequest
from tunepipe.protocol.logs import iso
from tunepipe.protocol.types import Id, Text

MAX_ENTRIES_PER_CALL = 100
MAX_SAMPLE_SIZE = 1_000_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateDatasetRequest(_Body):
    name: Text = Field(min_length=1, max_length=200)
    train_ratio: float | None = Field(None, gt=0, le=1)


class UpdateDatasetRequest(_Body):
    name: Text | None = Field(None, min_length=1, max_length=200)
    train_ratio: float | None = Field(None, gt=0, le=1)


class CreateEntriesRequest(_Body):
    entries: list[Any] = Field(min_length=1, max_length=MAX_ENTRIES_PER_CALL)


class UnstableCreateDatasetRequest(_Body):
    name: Text = Field(min_length=1, max_length=200)


class UnstableDeleteDatasetRequest(_Body):
    dataset_id: Id = Field(alias="datasetId")


class UnstableCreateEntriesRequest(_Body):
    dataset_id: Id = Field(alias="datasetId")
    entries: list[Any] = Field(min_length=1, max_length=MAX_ENTRIES_PER_CALL)


class UpdateEntryRequest(_Strict):
    """Only the fields present change. ``messages`` is the full conversation (its last message
    becomes the output); ``output`` replaces just the final assistant message."""

    split: str | None = None
    messages: list[Any] | None = None
    output: dict[str, Any] | None = None
    rejected_message: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class LogImportFilters(_Strict):
    """The filters of ``GET /logs``; times are Unix milliseconds or ISO 8601."""

    since: int | Text | None = None
    until: int | Text | None = None
    model: Text | None = None
    status: int | None = None
    metadata: dict[Text, Text] = Field(default_factory=dict)
    contains: Text | None = None


class ImportLogsRequest(_Strict):
    filters: LogImportFilters = Field(default_factory=LogImportFilters)
    sample_size: int | None = Field(None, ge=1, le=MAX_SAMPLE_SIZE)
    max_entries: int | None = Field(
        None, ge=1, description="At most this many entries (capped by the server)."
    )
    dedupe: bool = True
    seed: int | None = None


class RelabelRequest(_Strict):
    model: Text = Field(min_length=1)
    entry_ids: list[Text] | None = Field(None, min_length=1, max_length=100_000)
    split: Literal["TRAIN", "TEST"] | None = None


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


# Views


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


def entries_created_view(created: int, errors: list[tuple[int, str]]) -> dict[str, Any]:
    return {
        "object": "dataset.entries.creation",
        "entries_created": created,
        "errors": {
            "object": "list",
            "data": [
                {"object": "dataset.entries.creation.error", "entry_index": i, "message": m}
                for i, m in errors
            ],
        },
    }
