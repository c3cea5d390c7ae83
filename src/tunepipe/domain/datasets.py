"""A dataset and its stored entries as use cases see them: frozen values, never live rows.

The rules an entry must pass, and its normalised form, are :mod:`.dataset_entries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunepipe.domain.dataset_entries import EntryData


@dataclass(frozen=True, slots=True)
class Dataset:
    id: str
    project_id: str
    name: str
    train_ratio: float
    created_at: int
    updated_at: int
    entry_count: int = 0


@dataclass(frozen=True, slots=True)
class StoredEntry:
    id: str
    dataset_id: str
    data: EntryData  # split is always set
    provenance: str
    logged_call_id: str | None
    input_hash: str
    original_output: dict[str, Any] | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class NewEntry:
    data: EntryData  # split already assigned
    provenance: str
    logged_call_id: str | None = None
    job_id: str | None = None  # the import job that made it (a retried import removes its own first)


@dataclass(frozen=True, slots=True)
class EntryFilter:
    split: str | None = None
    provenance: str | None = None
    contains: str | None = None
