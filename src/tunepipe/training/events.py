"""The training process's only output channel: one JSON object per line.

The job system reads the child's stdout line by line, so every event is written whole and
flushed at once, and copied to ``training_log.jsonl`` in the job directory. :class:`EventLog`
owns the real stdout (the entry point points ``sys.stdout`` and file descriptor 1 at stderr, so
a library that prints cannot corrupt the stream). No torch here: a job that fails validation
reports it without paying for the import.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson


class EventLog:
    """Writes events to the parent (a stream) and to the job's log file."""

    def __init__(self, stream: IO[bytes], log_path: Path | None) -> None:
        self._stream = stream
        self._log = log_path.open("ab") if log_path is not None else None

    def emit(self, event: dict[str, Any]) -> None:
        line = orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        if self._log is not None:
            self._log.write(line)
            self._log.flush()
        self._stream.write(line)
        self._stream.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
