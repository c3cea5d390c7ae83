"""OpenPipe's log API bodies (camelCase, as the SDK sends them) and tunepipe's log views."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Scalar = str | int | float | bool | None


def _whole_ms(value: Any) -> Any:
    return math.floor(value) if isinstance(value, float) and math.isfinite(value) else value


# OpenPipe types times as "number": `time.time() * 1000` (a fraction) is valid; stored as whole ms.
UnixMs = Annotated[int, BeforeValidator(_whole_ms), Field(ge=-(2**63), lt=2**63)]  # a 64-bit column


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ReportRequest(_Body):
    requested_at: UnixMs | None = Field(None, alias="requestedAt")
    received_at: UnixMs | None = Field(None, alias="receivedAt")
    req_payload: Any = Field(None, alias="reqPayload")
    resp_payload: Any = Field(None, alias="respPayload")
    status_code: int | None = Field(None, alias="statusCode")
    error_message: str | None = Field(None, alias="errorMessage")
    tags: dict[str, Scalar] = Field(default_factory=dict)


class ReportAnthropicRequest(ReportRequest):
    metadata: dict[str, str] = Field(default_factory=dict)


class ReportResponse(BaseModel):
    status: str


class MetadataFilter(_Body):
    field: str
    equals: str | int | float | bool


class UpdateMetadataRequest(_Body):
    filters: list[MetadataFilter]
    metadata: dict[str, str | None]


class UpdateTagsRequest(_Body):
    filters: list[MetadataFilter]
    tags: dict[str, Scalar]


class MatchedLogs(BaseModel):
    matchedLogs: int


class CheckCacheRequest(_Body):
    requested_at: UnixMs = Field(alias="requestedAt")
    req_payload: Any = Field(None, alias="reqPayload")
    tags: dict[str, str] = Field(default_factory=dict)
