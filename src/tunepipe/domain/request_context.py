"""The request a piece of code runs for: its ``x-request-id``, in a context variable.

The HTTP middleware sets it once per request (the client's own id when it is usable, else a new
one) and every layer below reads it without it being passed along: the log record of a call
keeps it, so a line in a client's log leads to the logged call. Outside a request (a job, a CLI
command) it is ``None``.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

MAX_REQUEST_ID_LENGTH = 200

# Printable ASCII without leading or trailing blanks: anything else could break a log line or a
# header of a response, so such an id is replaced rather than cleaned up.
_USABLE = re.compile(rf"[\x21-\x7e](?:[\x20-\x7e]{{0,{MAX_REQUEST_ID_LENGTH - 2}}}[\x21-\x7e])?")

request_id: ContextVar[str | None] = ContextVar("tunepipe_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, if any."""
    return request_id.get()


def usable_request_id(value: str | bytes | None) -> str | None:
    """``value`` when a client's id can be used as it is (printable ASCII, at most 200
    characters), else ``None``."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if _USABLE.fullmatch(value) else None


def new_request_id() -> str:
    """A fresh id: ``req_`` and 32 random hex digits."""
    return "req_" + os.urandom(16).hex()
