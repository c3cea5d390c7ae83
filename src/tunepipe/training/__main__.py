"""``python -m tunepipe.training <job_dir>``: the process boundary of a training job.

Owns the process-wide concerns: the real stdout is kept for events only and every other
writer (libraries that ``print``, warnings, logging) is pointed at stderr; SIGTERM exits at
once; any failure becomes one ``error`` event and exit status 1.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import IO

from pydantic import ValidationError

from tunepipe.errors import TunepipeError
from tunepipe.training.config import LOG_FILE
from tunepipe.training.events import EventLog

log = logging.getLogger("tunepipe.training")


def _claim_stdout() -> IO[bytes]:
    """A binary stream on the original stdout; file descriptor 1 and ``sys.stdout`` become stderr."""
    sys.stdout.flush()
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(events_fd, "wb", buffering=0)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Cancellation: nothing to save, and a half-written adapter is not worth waiting for.
    os._exit(128 + signum)


def main(argv: list[str]) -> int:
    # Everything a job needs is on disk; a library reaching for the hub would hang offline.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    signal.signal(signal.SIGTERM, _on_sigterm)
    stream = _claim_stdout()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if len(argv) != 1:
        EventLog(stream, None).emit(
            {"event": "error", "message": "usage: python -m tunepipe.training JOB_DIR"}
        )
        return 1
    job_dir = Path(argv[0])
    events = EventLog(stream, job_dir / LOG_FILE if job_dir.is_dir() else None)
    try:
        from tunepipe.training.job import run_job

        metrics = run_job(job_dir, events)
    except ValidationError as e:
        message = "invalid config.json: " + "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in e.errors()
        )
        return _fail(events, message)
    except FileNotFoundError as e:
        return _fail(events, f"missing file: {e.filename or e}")
    except TunepipeError as e:
        return _fail(events, e.message)
    except Exception as e:  # the process boundary: report, then exit non-zero
        traceback.print_exc()
        return _fail(events, f"{type(e).__name__}: {e}")
    events.emit({"event": "done", "metrics": metrics})
    events.close()
    return 0


def _fail(events: EventLog, message: str) -> int:
    log.error("training failed: %s", message)
    events.emit({"event": "error", "message": message})
    events.close()
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
