"""Log labels: body ``metadata`` (current) and ``tags`` / ``op-tags`` (deprecated) become one
string map on the log.

OpenPipe's rules carry over: tag values that are numbers or booleans are stringified, null or
empty values are dropped, and tag names are reduced to ``[A-Za-z0-9_$.]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from tunepipe.errors import InvalidRequest

_NAME_JUNK = re.compile(r"[^A-Za-z0-9_$.]")


def _stringify(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def normalise_tag_name(name: str) -> str:
    return _NAME_JUNK.sub("_", str(name))


def normalise_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in tags.items():
        clean = normalise_tag_name(name)
        text = _stringify(value)
        if clean and text is not None:
            out[clean] = text
    return out


def parse_tags_header(header: str | None) -> dict[str, str]:
    """The deprecated ``op-tags`` header: a JSON object."""
    if not header:
        return {}
    try:
        value = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Failed to parse tags: {exc}", param="op-tags") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("Failed to parse tags: op-tags must be a JSON object", param="op-tags")
    return normalise_tags(value)


def merge_labels(metadata: Mapping[str, Any] | None, *tag_maps: Mapping[str, str]) -> dict[str, str | None]:
    """Body metadata wins over tags of the same name."""
    merged: dict[str, str | None] = {}
    for tags in tag_maps:
        merged.update(tags)
    if metadata:
        for k, v in metadata.items():
            merged[str(k)] = v if isinstance(v, str) else _stringify(v)
    return merged
