"""Where a fine-tune's files live on this machine, and moving them through the database.

A worker packs the trained adapter directory into a gzipped tar stored in
``fine_tune_artifacts``; any server or worker unpacks it under
``TUNEPIPE_HOME/fine_tunes/<id>/adapter`` on first use (checked against the stored sha256), so
no shared filesystem is needed between the machine that trained and the one that serves.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Connection

from tunepipe.db import fine_tunes as repo
from tunepipe.training.config import LOG_FILE

ADAPTER = "adapter"


def fine_tune_dir(home: Path, fine_tune_id: str) -> Path:
    return home / "fine_tunes" / fine_tune_id


def adapter_dir(home: Path, fine_tune_id: str) -> Path:
    return fine_tune_dir(home, fine_tune_id) / ADAPTER


def write_tar_gz(directory: Path, out: BinaryIO) -> None:
    """Write a gzipped tar of ``directory``'s files (names relative to it) to ``out``."""
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(directory)))


def pack(directory: Path) -> tuple[bytes, str]:
    """:func:`write_tar_gz` of ``directory`` in memory, and its sha256."""
    buf = io.BytesIO()
    write_tar_gz(directory, buf)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def store_adapter(conn: Connection, home: Path, fine_tune_id: str, trained: Path) -> Path:
    """Keep ``trained`` (an adapter directory) as the fine-tune's adapter, here and in the DB."""
    data, sha = pack(trained)
    repo.save_artifact(conn, fine_tune_id, ADAPTER, data, sha)
    target = adapter_dir(home, fine_tune_id)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(trained, target)
    (target.parent / f"{ADAPTER}.sha256").write_text(sha)
    return target


def materialise_adapter(conn: Connection, home: Path, fine_tune_id: str) -> Path | None:
    """The fine-tune's adapter directory on this machine, unpacked from the DB when missing or
    stale; None when the fine-tune has no stored adapter (not trained yet)."""
    target = adapter_dir(home, fine_tune_id)
    marker = target.parent / f"{ADAPTER}.sha256"
    sha = repo.artifact_sha(conn, fine_tune_id, ADAPTER)
    if sha is None:
        return None
    if target.is_dir() and marker.is_file() and marker.read_text() == sha:
        return target
    data = repo.load_artifact(conn, fine_tune_id, ADAPTER)
    if data is None:
        return None
    staging = target.parent / f".{ADAPTER}.unpacking"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(staging, filter="data")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    marker.write_text(sha)
    return target


def remove_files(home: Path, fine_tune_id: str) -> None:
    shutil.rmtree(fine_tune_dir(home, fine_tune_id), ignore_errors=True)


def tar_gz_file(directory: Path, archive: Path) -> None:
    """:func:`write_tar_gz` of ``directory`` into ``archive``, written aside and renamed into place."""
    partial = archive.with_name(f".{archive.name}.partial")
    with partial.open("wb") as out:
        write_tar_gz(directory, out)
    partial.rename(archive)


MAX_EVENTS = 20_000  # points of a loss curve kept (a long run keeps its last ones)


def progress_events(log: Path | None, archive: bytes | None) -> list[dict[str, Any]]:
    """The ``progress`` events of a training log (``training_log.jsonl``), read from ``log`` or
    from the log kept inside an adapter ``archive``; malformed lines are skipped."""
    if log is not None:
        try:
            raw = log.read_bytes()
        except OSError:
            return []
    elif archive is not None:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            try:
                member = tar.extractfile(LOG_FILE)
            except KeyError:
                return []
            raw = member.read() if member is not None else b""
    else:
        return []
    events: list[dict[str, Any]] = []
    for line in raw.splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") == "progress":
            events.append(event)
    return events[-MAX_EVENTS:]
