"""The response cache's key (``op-cache``, spec B.8) and its modes.

The key is the SHA-256 of a canonical JSON (sorted keys, no whitespace) of the project, the
resolved model (a fine-tune by its id, so a new model under an old slug never answers from the
old one's cache) and every request field except those that cannot change the answer:
``stream``, ``stream_options``, ``metadata``, ``store`` and ``user``. It is a deny-list on
purpose: OpenPipe keyed on a handful of fields and left temperature and ``n`` out, so a
temperature-1 request could be answered from a temperature-0 one. A field tunepipe does not know
is assumed to matter.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

import orjson

from tunepipe.errors import InvalidRequest

IGNORED_FIELDS = frozenset({"model", "stream", "stream_options", "metadata", "store", "user"})

DEFAULT_TTL_S = 7 * 24 * 3600
MAX_TTL_S = 365 * 24 * 3600


class CacheMode(StrEnum):
    READ_WRITE = "readWrite"
    READ_ONLY = "readOnly"
    WRITE_ONLY = "writeOnly"

    @property
    def reads(self) -> bool:
        return self is not CacheMode.WRITE_ONLY

    @property
    def writes(self) -> bool:
        return self is not CacheMode.READ_ONLY


class CacheStatus(StrEnum):
    """The ``op-cache-status`` response header."""

    HIT = "HIT"  # answered from the cache
    MISS = "MISS"  # looked up, not found; called the model (and stored the answer if allowed)
    WRITE = "WRITE"  # not looked up (writeOnly); called the model and stored the answer
    BYPASS = "BYPASS"  # no caching asked


def parse_mode(value: str | None) -> CacheMode | None:
    """``op-cache``: a mode, legacy ``true`` (readWrite), or ``false``/absent (no caching)."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered == "true":
        return CacheMode.READ_WRITE
    if lowered in ("false", ""):
        return None
    for mode in CacheMode:
        if mode.value.lower() == lowered:
            return mode
    raise InvalidRequest("op-cache must be one of readWrite, readOnly, writeOnly", param="op-cache")


def parse_ttl(value: str | None) -> int | None:
    """``op-cache-ttl``: seconds an answer stored by this request stays (1 s to a year)."""
    if value is None:
        return None
    try:
        ttl = int(value.strip())
    except ValueError:
        raise InvalidRequest("op-cache-ttl must be a whole number of seconds", param="op-cache-ttl") from None
    if not 1 <= ttl <= MAX_TTL_S:
        raise InvalidRequest(f"op-cache-ttl must be between 1 and {MAX_TTL_S} seconds", param="op-cache-ttl")
    return ttl


def cache_key(project_id: str, model_identity: str, body: dict[str, Any]) -> str:
    """The key of a request's answer; ``model_identity`` names the resolved model."""
    fields = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    canonical = orjson.dumps(
        {"project": project_id, "model": model_identity, "request": fields}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()
