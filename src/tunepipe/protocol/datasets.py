"""Dataset API bodies: OpenPipe's (``/datasets``, the deprecated ``/unstable/dataset*``) and
tunepipe's additions (dataset settings, entry edits).

Entries stay untyped JSON here: each one is validated on its own by
:mod:`tunepipe.domain.dataset_entries`, so one bad entry is reported by index instead of failing
the whole request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_ENTRIES_PER_CALL = 100


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class CreateDatasetRequest(_Body):
    name: str = Field(min_length=1, max_length=200)
    train_ratio: float | None = Field(None, gt=0, le=1)


class UpdateDatasetRequest(_Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    train_ratio: float | None = Field(None, gt=0, le=1)


class CreateEntriesRequest(_Body):
    entries: list[Any] = Field(min_length=1, max_length=MAX_ENTRIES_PER_CALL)


class UnstableCreateDatasetRequest(_Body):
    name: str = Field(min_length=1, max_length=200)


class UnstableDeleteDatasetRequest(_Body):
    dataset_id: str = Field(alias="datasetId")


class UnstableCreateEntriesRequest(_Body):
    dataset_id: str = Field(alias="datasetId")
    entries: list[Any] = Field(min_length=1, max_length=MAX_ENTRIES_PER_CALL)


class UpdateEntryRequest(BaseModel):
    """Only the fields present change. ``messages`` is the full conversation (its last message
    becomes the output); ``output`` replaces just the final assistant message."""

    model_config = ConfigDict(extra="forbid")

    split: str | None = None
    messages: list[Any] | None = None
    output: dict[str, Any] | None = None
    rejected_message: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
