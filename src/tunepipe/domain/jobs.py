"""Background jobs: what a job is, and the one table of the status changes it can go through.

Every background job (training a fine-tune, importing logs into a dataset, relabeling a
dataset) is a row with a ``kind``, claimed atomically by a worker, beaten alive while it runs,
cancellable, and recovered when its worker dies. Its status moves only along
:data:`TRANSITIONS`::

               claimed             succeeded
    QUEUED ───────────► RUNNING ──────────────► DONE
      │  ▲                │ │ │
      │  └── retried ─────┘ │ └── failed ──────► ERROR
      │  └── released ──────┘
      └──────── cancelled ────────(also from RUNNING)──► CANCELLED

*retried*: an attempt died (a crashed process, a worker whose heartbeat stopped) and attempts
remain; *released*: the worker shut down, which is no fault of the job, so the attempt is not
spent. :func:`change` turns an event into the column values it sets, so the database layer
writes what this module decides and nothing else; what a job's *subject* shows (a fine-tune's
status) follows from the job (:func:`tunepipe.domain.fine_tunes.follow_job`) in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


class JobEvent(StrEnum):
    CLAIMED = "claimed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRIED = "retried"
    RELEASED = "released"


class JobKind(StrEnum):
    TRAIN = "train"
    IMPORT_LOGS = "import_logs"
    RELABEL = "relabel"
    EVALUATE = "evaluate"
    ALIGN = "align"


UNFINISHED = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})

TRANSITIONS: Mapping[tuple[JobStatus, JobEvent], JobStatus] = {
    (JobStatus.QUEUED, JobEvent.CLAIMED): JobStatus.RUNNING,
    (JobStatus.QUEUED, JobEvent.CANCELLED): JobStatus.CANCELLED,
    (JobStatus.RUNNING, JobEvent.SUCCEEDED): JobStatus.DONE,
    (JobStatus.RUNNING, JobEvent.FAILED): JobStatus.ERROR,
    (JobStatus.RUNNING, JobEvent.CANCELLED): JobStatus.CANCELLED,
    (JobStatus.RUNNING, JobEvent.RETRIED): JobStatus.QUEUED,
    (JobStatus.RUNNING, JobEvent.RELEASED): JobStatus.QUEUED,
}

HELD = frozenset({JobEvent.SUCCEEDED, JobEvent.FAILED, JobEvent.RETRIED, JobEvent.RELEASED})
"""Events only the worker holding the job may cause (a cancel may come from anyone)."""

CANCELLED_MESSAGE = "cancelled"


class IllegalTransition(ValueError):
    """An event that does not apply to a job in its current status."""


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    project_id: str
    subject_id: str  # the fine-tune of a train job, the dataset of a dataset job
    status: JobStatus
    attempts: int
    max_attempts: int
    worker_id: str | None
    heartbeat_at: int | None
    cancel_requested: bool
    error_message: str | None
    params: dict[str, Any]  # what was asked (a dataset job's request)
    progress: dict[str, Any]  # how far it got: stage, step and counters, written while it runs
    result: dict[str, Any] | None  # what it produced (a fine-tune's metrics, an import's counts)
    created_at: int
    updated_at: int
    started_at: int | None
    finished_at: int | None

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED


def next_status(status: JobStatus, event: JobEvent) -> JobStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(f"a {status} job cannot be {event}") from None


def change(
    job: Job,
    event: JobEvent,
    *,
    now: int,
    worker_id: str | None = None,
    message: str | None = None,
    progress: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The columns ``event`` sets on ``job`` (raises :class:`IllegalTransition`).

    ``progress`` is the last progress the worker knows of (its own copy is newer than
    ``job.progress``); ``message`` the reason a job ended or went back to the queue.
    """
    status = next_status(job.status, event)
    last = progress if progress is not None else job.progress
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if event is JobEvent.CLAIMED:
        values.update(
            worker_id=worker_id,
            heartbeat_at=now,
            attempts=job.attempts + 1,
            started_at=now,
            progress={"stage": "preparing", "attempt": job.attempts + 1},
        )
    elif event in (JobEvent.RETRIED, JobEvent.RELEASED):
        attempts = job.attempts if event is JobEvent.RETRIED else job.attempts - 1
        queued: dict[str, Any] = {"stage": "queued", "attempt": job.attempts, "message": message}
        if event is JobEvent.RETRIED:
            queued["retry"] = job.attempts + 1
        values.update(worker_id=None, attempts=attempts, error_message=message, progress=queued)
    else:
        values.update(finished_at=now, progress={**last, "stage": _final_stage(status, last)})
        values["error_message"] = CANCELLED_MESSAGE if status is JobStatus.CANCELLED else message
        if event is JobEvent.CANCELLED:
            values["cancel_requested"] = True
        if result is not None:
            values["result"] = result
    return values


def _final_stage(status: JobStatus, last: Mapping[str, Any]) -> str:
    if status is JobStatus.DONE:
        return "done"
    return "cancelled" if status is JobStatus.CANCELLED else str(last.get("stage") or "failed")


def after_crash(job: Job) -> JobEvent:
    """A running attempt died (its process was killed, its worker stopped beating): try again
    while attempts remain and nobody asked to cancel, else it is over."""
    if job.cancel_requested:
        return JobEvent.CANCELLED
    return JobEvent.RETRIED if job.attempts < job.max_attempts else JobEvent.FAILED
