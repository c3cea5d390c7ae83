"""The request-log spool: every log record on local disk before its call is answered.

The log writer keeps records in memory until a batch commits, so a process that dies (``kill
-9``, OOM) or a database that stops answering would lose them. Each process therefore appends
every record, as it is submitted, to a spool of its own under ``<home>/spool/``, and marks how
far the database has committed; a record is in the page cache before its response is sent, and
the page cache outlives the process. No fsync: a machine that loses power may lose the last
records (as the database itself would with ``synchronous=NORMAL``), a process that dies loses
none.

Files of one spool (``owner`` is ``<start time ns>-<pid>-<random>``, so processes sharing a
home never share a file, and names sort by when their process started)::

    <owner>.lock          held (flock) by the owner for its lifetime; a spool whose lock can be
                          taken belongs to a process that is gone: an orphan
    <owner>.cursor        16 bytes, (segment, offset): everything before it is committed
    <owner>.<segment>.seg records, appended; a new segment past ``segment_bytes``; a segment
                          wholly before the cursor is deleted

A frame is ``<u32 length><u32 crc32>`` then the payload: ``<u32 meta><i32 request><i32
response>`` lengths (-1: none), the record's other fields as orjson, then the two bodies as
JSON text (compressing them is left to the writer, off the answer's path). A frame cut short
or failing its checksum ends its segment (a torn last append).

Start-up replays orphans (:func:`claim_orphans`): their records from the cursor on, in order.
The cursor is written after the commit, so the last batch before a crash may be replayed
although it was written: the writer skips ids already stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

from tunepipe.domain.criteria import CriterionResult
from tunepipe.domain.logs import LogRecord

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")  # payload length, crc32 of the payload
_LENGTHS = struct.Struct("<Iii")  # meta, request (-1: None), response (-1: None)
_CURSOR = struct.Struct("<QQ")  # segment, offset
_META_FIELDS = tuple(f.name for f in fields(LogRecord) if f.name not in ("request", "response"))
SEGMENT_BYTES = 64 * 2**20


class Entry(NamedTuple):
    """A record as the spool keeps it: its bodies as JSON bytes (the record's own ``request``
    and ``response`` are not read, and come back as None)."""

    record: LogRecord
    request: bytes | None
    response: bytes | None


class Position(NamedTuple):
    """A place in a spool, between two records: (segment, byte offset). Ordered as tuples."""

    segment: int
    offset: int


def encode(entry: Entry) -> bytes:
    r, request, response = entry
    meta = orjson.dumps({name: getattr(r, name) for name in _META_FIELDS})
    payload = b"".join(
        (
            _LENGTHS.pack(
                len(meta), -1 if request is None else len(request), -1 if response is None else len(response)
            ),
            meta,
            request or b"",
            response or b"",
        )
    )
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> Entry:
    meta_len, request_len, response_len = _LENGTHS.unpack_from(payload)
    at = _LENGTHS.size
    meta: dict[str, Any] = orjson.loads(payload[at : at + meta_len])
    at += meta_len
    request = None if request_len < 0 else payload[at : at + request_len]
    at += max(request_len, 0)
    response = None if response_len < 0 else payload[at : at + response_len]
    meta["criteria"] = [(int(i), CriterionResult(**c)) for i, c in meta.get("criteria") or []]
    return Entry(LogRecord(**meta), request, response)


def read_frames(f: BinaryIO, start: int = 0, end: int | None = None) -> Iterator[tuple[Entry, int]]:
    """The records of the open segment ``f`` from byte ``start`` (up to ``end``) and the offset
    after each, read as they are needed; stops at a torn or damaged frame."""
    f.seek(start)
    at = start
    while end is None or at + _FRAME.size <= end:
        header = f.read(_FRAME.size)
        if len(header) < _FRAME.size:
            return
        length, crc = _FRAME.unpack(header)
        payload_end = at + _FRAME.size + length
        if end is not None and payload_end > end:
            return
        payload = f.read(length)
        if len(payload) < length:  # torn: the process died inside this write
            return
        if zlib.crc32(payload) != crc:
            log.warning("request-log spool: a damaged record at byte %d ends its segment", at)
            return
        try:
            item = _decode_payload(payload)
        except Exception:  # a checksum collision on garbage; nothing after it can be trusted
            log.exception("request-log spool: an unreadable record at byte %d ends its segment", at)
            return
        at = payload_end
        yield item, at


def _segments(directory: Path, owner: str) -> list[int]:
    found = []
    for path in directory.glob(f"{owner}.*.seg"):
        with contextlib.suppress(ValueError):
            found.append(int(path.name[len(owner) + 1 : -len(".seg")]))
    return sorted(found)


def _segment_path(directory: Path, owner: str, segment: int) -> Path:
    return directory / f"{owner}.{segment:08d}.seg"


def _read_cursor(path: Path) -> Position | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return Position(*_CURSOR.unpack(raw)) if len(raw) == _CURSOR.size else None


def read_spool(
    directory: Path, owner: str, start: Position, end: Position | None, limit: int
) -> tuple[list[tuple[Entry, Position]], Position]:
    """Up to ``limit`` records from ``start`` (to ``end``, else to each segment's last whole
    record) and the position after the last one read."""
    out: list[tuple[Entry, Position]] = []
    at = start
    for segment in _segments(directory, owner):
        if segment < at.segment or (end is not None and segment > end.segment):
            continue
        if segment > at.segment:
            at = Position(segment, 0)
        try:
            f = _segment_path(directory, owner, segment).open("rb")
        except FileNotFoundError:
            continue
        with f:
            stop = end.offset if end is not None and segment == end.segment else None
            for item, offset in read_frames(f, at.offset, stop):
                at = Position(segment, offset)
                out.append((item, at))
                if len(out) >= limit:
                    return out, at
            size = os.fstat(f.fileno()).st_size
        if end is None and at.segment == segment and at.offset < size:
            at = Position(segment, size)  # a torn tail: skipped, never read again
    return out, at


def _take_lock(path: Path) -> int | None:
    """The lock at ``path``, held (its descriptor), or None when another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    if not path.exists():  # removed by whoever replayed it before us
        os.close(fd)
        return None
    return fd


class _Files:
    """A spool's files (its owner's), with the lock held."""

    def __init__(self, directory: Path, owner: str, lock_fd: int) -> None:
        self.directory = directory
        self.owner = owner
        self._lock_fd = lock_fd
        self._cursor_fd = os.open(directory / f"{owner}.cursor", os.O_RDWR | os.O_CREAT, 0o600)

    def mark(self, position: Position) -> None:
        """Everything before ``position`` is committed: record it, delete what it leaves behind."""
        os.pwrite(self._cursor_fd, _CURSOR.pack(*position), 0)
        self._drop_before(position.segment)

    def _drop_before(self, segment: int) -> None:
        for older in _segments(self.directory, self.owner):
            if older >= segment:
                break
            _segment_path(self.directory, self.owner, older).unlink(missing_ok=True)

    def release(self, *, remove: bool) -> None:
        """Give the spool up; ``remove``: everything in it is committed, delete its files."""
        os.close(self._cursor_fd)
        if remove:
            for segment in _segments(self.directory, self.owner):
                _segment_path(self.directory, self.owner, segment).unlink(missing_ok=True)
            (self.directory / f"{self.owner}.cursor").unlink(missing_ok=True)
            (self.directory / f"{self.owner}.lock").unlink(missing_ok=True)
        os.close(self._lock_fd)


class Orphan(_Files):
    """The spool of a process that is gone, claimed (locked) for replay."""

    def start(self) -> Position:
        first = _segments(self.directory, self.owner)
        cursor = _read_cursor(self.directory / f"{self.owner}.cursor")
        return cursor if cursor is not None else Position(first[0] if first else 0, 0)

    def read(self, start: Position, limit: int) -> tuple[list[tuple[Entry, Position]], Position]:
        return read_spool(self.directory, self.owner, start, None, limit)


def claim_orphans(directory: Path, exclude: str | None = None) -> list[Orphan]:
    """Every spool under ``directory`` whose process is gone, locked for this one, oldest first."""
    if not directory.is_dir():
        return []
    claimed = []
    for lock in sorted(directory.glob("*.lock")):  # by name: by the time their process started
        owner = lock.name[: -len(".lock")]
        if owner == exclude:
            continue
        fd = _take_lock(lock)
        if fd is not None:
            claimed.append(Orphan(directory, owner, fd))
    return claimed


class Spool(_Files):
    """This process's spool: appended on the event loop, marked after each commit."""

    def __init__(self, directory: Path, owner: str, lock_fd: int, segment_bytes: int) -> None:
        super().__init__(directory, owner, lock_fd)
        self._segment_bytes = segment_bytes
        self._segment = 0
        self._oldest = 0  # the first segment not yet deleted
        self._size = 0
        self._torn = False  # a short write left a torn frame: the next record starts a segment
        self._fd = os.open(_segment_path(directory, owner, 0), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    @classmethod
    def create(cls, directory: Path, *, segment_bytes: int = SEGMENT_BYTES) -> Spool:
        """A new spool for this process. Its lock is taken under a temporary name and then
        renamed into place, so no other process ever sees it unlocked and takes it for an orphan."""
        directory.mkdir(parents=True, exist_ok=True)
        owner = f"{time.time_ns():019d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temporary = directory / f".{owner}.lock.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(temporary, directory / f"{owner}.lock")
        return cls(directory, owner, fd, segment_bytes)

    @property
    def end(self) -> Position:
        """The position after the last record appended."""
        return Position(self._segment, self._size)

    def append(self, item: Entry) -> Position:
        """Write one record (no fsync: the page cache outlives the process); its end position."""
        frame = encode(item)
        if self._torn or (self._size and self._size + len(frame) > self._segment_bytes):
            os.close(self._fd)
            self._segment += 1
            self._size = 0
            self._torn = False
            path = _segment_path(self.directory, self.owner, self._segment)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        written = os.write(self._fd, frame)
        if written != len(frame):  # a full disk; the record is not durable, nor is the torn tail
            self._size += written
            self._torn = True
            raise OSError(f"request-log spool: short write ({written} of {len(frame)} bytes)")
        self._size += written
        return self.end

    def _drop_before(self, segment: int) -> None:
        # Its own segments are known: no directory listing on every commit.
        for older in range(self._oldest, segment):
            _segment_path(self.directory, self.owner, older).unlink(missing_ok=True)
        self._oldest = max(self._oldest, segment)

    def read(
        self, start: Position, end: Position, limit: int
    ) -> tuple[list[tuple[Entry, Position]], Position]:
        """Records this process spooled but did not queue (the writer's backlog); any thread."""
        return read_spool(self.directory, self.owner, start, end, limit)

    def close(self, *, remove: bool) -> None:
        os.close(self._fd)
        self.release(remove=remove)
