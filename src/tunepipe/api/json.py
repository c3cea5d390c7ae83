"""JSON responses encoded with orjson, and header values made safe to send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson
from starlette.responses import Response


def safe_headers(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """``headers`` with every value that is not printable ASCII percent-encoded. Some values echo
    what a caller sent (``op-model`` is the requested model's name); a control character or a
    non-Latin-1 one in a header would make the server drop the connection instead of answering."""
    if not headers or all(v.isascii() and v.isprintable() for v in headers.values()):
        return headers
    return {k: v if v.isascii() and v.isprintable() else quote(v, safe="") for k, v in headers.items()}


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS),
        status_code=status_code,
        headers=safe_headers(headers),
        media_type="application/json",
    )


def raw_json_response(
    body: bytes, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        body, status_code=status_code, headers=safe_headers(headers), media_type="application/json"
    )
