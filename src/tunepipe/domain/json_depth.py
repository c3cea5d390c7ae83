"""How deep a JSON body may nest, and a check of it that costs next to nothing on common bodies.

orjson parses documents nested up to 1,024 levels but encodes only up to 254, so a body between
the two used to be accepted and then fail when it was forwarded, stored or logged: a 500 for
what is the caller's mistake. Every request body is held to :data:`max_depth` (128 levels unless
configured) before it is parsed, and a deeper one is a 400 (:class:`~tunepipe.errors.JsonTooDeep`).

The limit in force is a context variable, as the request id is: the HTTP middleware sets it
from the settings for each request, so every parser below reads it without it being passed
along; outside a request it is :data:`DEFAULT_MAX_DEPTH`.

The check never parses. A body with no more ``[`` and ``{`` than the limit cannot nest deeper,
whatever it holds: two byte counts answer for nearly every request. Only a body with more
brackets than that has its strings cut out and its brackets walked, run by run: byte-string
operations, so it costs about what parsing the body does (a 90 kB request with 20 tools: about
as long as ``orjson.loads``; a pathological 32 MiB one: under a second, less than its parse).
"""

from __future__ import annotations

from contextvars import ContextVar

from tunepipe.errors import JsonTooDeep

DEFAULT_MAX_DEPTH = 128

max_depth: ContextVar[int] = ContextVar("tunepipe_max_json_depth", default=DEFAULT_MAX_DEPTH)

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_SAME_BRACKETS = bytes.maketrans(b"{}", b"[]")


def _outside_strings(raw: bytes) -> bytes:
    """The brackets of ``raw`` that lie outside its JSON strings, ``{}`` spelled ``[]``.

    Escaped backslashes go first, then escaped quotes: in JSON both appear only inside strings,
    and they pair up from the left as replacing does. Every quote left then opens or closes a
    string, so once everything but quotes and brackets is dropped, the structure is every other
    piece between quotes."""
    if b"\\" in raw:
        if b"\\\\" in raw:
            raw = raw.replace(b"\\\\", b"")
        raw = raw.replace(b'\\"', b"")
    return b"".join(raw.translate(_SAME_BRACKETS, _NOT_STRUCTURE).split(b'"')[::2])


def depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether the JSON text ``raw`` nests more than ``limit`` containers deep (an array or an
    object counts one level). Text that is not JSON gets an answer too, never an error: the
    parser that comes next reports what is wrong with it."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _outside_strings(raw)
    if brackets.count(b"[") <= limit:
        return False
    # Leaves first: a pass removes the innermost pairs at the speed of a byte copy and lowers
    # the deepest point by exactly one level. Worth repeating while it removes much (a wide
    # document's small objects and arrays), never more often than the limit allows.
    while limit >= 0:
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        much = len(shorter) * 4 <= len(brackets) * 3
        brackets, limit = shorter, limit - 1
        if not much:
            break
    if limit < 0:
        return True
    # Then the runs of "[" and of "]", each found by a byte search.
    depth, start, end = 0, 0, len(brackets)
    while start < end:
        close = brackets.find(b"]", start)
        if close < 0:
            close = end
        depth += close - start
        if depth > limit:
            return True
        start = brackets.find(b"[", close)
        if start < 0:
            return False
        depth -= start - close
    return False


def check_depth(raw: bytes) -> None:
    """Raise :class:`~tunepipe.errors.JsonTooDeep` if ``raw`` nests deeper than the limit in
    force (:data:`max_depth`)."""
    limit = max_depth.get()
    if depth_exceeds(raw, limit):
        raise JsonTooDeep(f"Request body nests deeper than {limit} levels of JSON arrays and objects")
