"""API keys on the wire (``/keys``): what a project may see of its keys, and the body that
changes a key's rate limits.

A key is shown by its id, name and prefix, never its secret or hash (only the hash is stored).
Its limits are always an object, a limit of ``null`` meaning none. A change names only the
limits it changes: an absent field stays as it is, ``null`` removes that limit. Limits are
strict positive integers (``"5"``, ``5.0`` or ``true`` are refused, not coerced), at most what
the column holds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.projects import ApiKeyInfo, KeyLimits
from tunepipe.protocol.logs import iso

Limit = Annotated[int, Field(strict=True, ge=1, le=2_147_483_647)]


class KeyLimitsBody(BaseModel):
    """``PATCH /keys/{key_id}``: ``{rpm?, tpm?, max_concurrency?}``."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    rpm: Limit | None = None
    tpm: Limit | None = None
    max_concurrency: Limit | None = Field(None, alias="maxConcurrency")

    def changes(self) -> dict[str, int | None]:
        """The limits this body names (by field name), with their new values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def limits_view(limits: KeyLimits | None) -> dict[str, int | None]:
    limits = limits or KeyLimits()
    return {"rpm": limits.rpm, "tpm": limits.tpm, "max_concurrency": limits.max_concurrency}


def key_view(k: ApiKeyInfo) -> dict[str, Any]:
    return {
        "id": k.id,
        "object": "api_key",
        "name": k.name,
        "prefix": k.key_prefix,
        "read_only": k.read_only,
        "created_at": iso(k.created_at),
        "limits": limits_view(k.limits),
    }
