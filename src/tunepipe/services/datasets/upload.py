"""JSONL files into a dataset: a streamed, all-or-nothing upload shared by the API and the CLI.

An upload reads the file twice and never holds it in memory. The first pass parses and
validates every line (spec D, through :func:`~tunepipe.domain.dataset_entries.parse_entry`) and
keeps only the first :data:`MAX_ERRORS` errors with their 1-based line numbers. Only a file
without a single error gets the second pass, which parses it again and inserts the entries in
batches inside one transaction. So an upload either creates every entry or none, and a bad line
on row 99,999 costs no cleanup.

Memory is bounded by one chunk, one line (at most :data:`MAX_LINE_BYTES`) and one batch,
whatever the file's size: the API reads the upload from the file Starlette spooled to disk, the
CLI from the file itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson
from sqlalchemy import Connection

from tunepipe.db import datasets as repo
from tunepipe.db.database import Database
from tunepipe.domain.dataset_entries import EntryData, EntryInvalid, assign_split, parse_entry
from tunepipe.domain.datasets import Dataset, NewEntry
from tunepipe.domain.json_depth import depth_exceeds, max_depth

CHUNK_BYTES = 1 << 16
MAX_LINE_BYTES = 32 << 20  # one entry; a longer line is an error, not a reason to buffer more
MAX_ERRORS = 100
BATCH_SIZE = 1000
_BOM = b"\xef\xbb\xbf"

Progress = Callable[[int], None]
"""Called with the number of bytes just read."""


@dataclass(frozen=True, slots=True)
class UploadResult:
    entries_created: int
    lines: int
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message), the first MAX_ERRORS
    error_count: int = 0  # all lines in error, including those not listed


def read_chunks(file: BinaryIO, progress: Progress | None = None) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        if progress is not None:
            progress(len(chunk))
        yield chunk


def iter_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line without its newline)``, 1-based; ``None`` for a line over ``max_line``.

    A final newline ends the last line and does not start an empty one. The bytes of an
    over-long line are dropped as they arrive, so no line is ever held beyond ``max_line``.
    """
    buf = bytearray()
    too_long = False
    number = 0
    for chunk in chunks:
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            number += 1
            if too_long or len(buf) + nl - start > max_line:
                yield number, None
            elif buf:
                buf += chunk[start:nl]
                yield number, bytes(buf)
            else:
                yield number, chunk[start:nl]
            buf.clear()
            too_long = False
            start = nl + 1
        if not too_long:
            buf += chunk[start:]
            if len(buf) > max_line:
                too_long = True
                buf.clear()
    if buf or too_long:
        yield number + 1, None if too_long else bytes(buf)


def parse_line(number: int, line: bytes | None) -> EntryData:
    """One JSONL line as a valid entry.

    Raises:
        EntryInvalid: the line is empty, too long, not JSON, or breaks a rule of spec D.
    """
    if line is None:
        raise EntryInvalid(f"line longer than {MAX_LINE_BYTES} bytes")
    if number == 1 and line.startswith(_BOM):
        line = line[len(_BOM) :]
    if not line.strip():
        raise EntryInvalid("empty row")
    if depth_exceeds(line, max_depth.get()):
        raise EntryInvalid(f"JSON nested deeper than {max_depth.get()} levels")
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EntryInvalid(f"invalid JSON: {exc}") from exc
    return parse_entry(raw)


def check_file(file: BinaryIO, progress: Progress | None = None) -> UploadResult:
    """First pass: validate every line, create nothing."""
    errors: list[tuple[int, str]] = []
    error_count = 0
    lines = 0
    for number, line in iter_lines(read_chunks(file, progress)):
        lines = number
        try:
            parse_line(number, line)
        except EntryInvalid as exc:
            error_count += 1
            if len(errors) < MAX_ERRORS:
                errors.append((number, str(exc)))
    if lines == 0:
        return UploadResult(0, 0, [(1, "the file has no entries")], 1)
    return UploadResult(0, lines, errors, error_count)


def _batches(file: BinaryIO, train_ratio: float, progress: Progress | None) -> Iterator[list[NewEntry]]:
    batch: list[NewEntry] = []
    for number, line in iter_lines(read_chunks(file, progress)):
        data = parse_line(number, line)  # checked in the first pass: raising here is a bug
        if data.split is None:
            data = dataclasses.replace(data, split=assign_split(data.input_hash, train_ratio))
        batch.append(NewEntry(data, "UPLOAD"))
        if len(batch) >= BATCH_SIZE:
            yield batch
            batch = []
    yield batch


def insert_file(conn: Connection, dataset: Dataset, file: BinaryIO, on_insert: Progress | None = None) -> int:
    """Second pass: insert every line of a checked file (all in ``conn``'s transaction)."""
    return repo.insert_entry_batches(
        conn, dataset.project_id, dataset.id, _batches(file, dataset.train_ratio, on_insert)
    )


def upload_jsonl(
    db: Database,
    dataset: Dataset,
    file: BinaryIO,
    *,
    on_check: Progress | None = None,
    on_insert: Progress | None = None,
) -> UploadResult:
    """Check the whole file, then, only if every line is valid, insert it all in one transaction.

    ``file`` must be seekable (it is read twice). Blocking: run it in a thread from async code.
    """
    file.seek(0)
    checked = check_file(file, on_check)
    if checked.error_count:
        return checked
    file.seek(0)
    return UploadResult(db.run_sync(insert_file, dataset, file, on_insert), checked.lines)
