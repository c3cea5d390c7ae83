"""Bodies of the dataset-job endpoints: import from request logs and relabel (tunepipe's own;
OpenPipe only had these in its UI)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_SAMPLE_SIZE = 1_000_000


class LogImportFilters(BaseModel):
    """The filters of ``GET /logs``; times are Unix milliseconds or ISO 8601."""

    model_config = ConfigDict(extra="forbid")

    since: int | str | None = None
    until: int | str | None = None
    model: str | None = None
    status: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    contains: str | None = None


class ImportLogsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: LogImportFilters = Field(default_factory=LogImportFilters)
    sample_size: int | None = Field(None, ge=1, le=MAX_SAMPLE_SIZE)
    dedupe: bool = True
    seed: int | None = None


class RelabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    entry_ids: list[str] | None = Field(None, min_length=1, max_length=100_000)
    split: Literal["TRAIN", "TEST"] | None = None
