"""Jobs on the wire: ``/jobs`` (every background job of the project) and the dataset routes'
older ``dataset.job`` shape.

The worker a job runs on is never shown: its name carries a host name, which is the operator's
business, not a tenant's.
"""

from __future__ import annotations

from typing import Any

from tunepipe.domain.jobs import Job
from tunepipe.protocol.logs import iso


def _iso(ms: int | None) -> str | None:
    return iso(ms) if ms is not None else None


def job_view(job: Job) -> dict[str, Any]:
    return {
        "object": "job",
        "id": job.id,
        "kind": job.kind,
        "subject_id": job.subject_id,
        "status": job.status.value,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "error_message": job.error_message,
        "params": job.params,
        "progress": job.progress,
        "result": job.result,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def dataset_job_view(job: Job) -> dict[str, Any]:
    """An import or relabel job as ``/datasets/{id}/jobs`` shows it: its counters up front."""
    counters = {**job.progress, **(job.result or {})}
    return {
        "object": "dataset.job",
        "id": job.id,
        "dataset_id": job.subject_id,
        "kind": job.kind,
        "status": job.status.value,
        "done": int(counters.get("done", 0)),
        "total": counters.get("total"),
        "created": int(counters.get("created", 0)),
        "skipped": int(counters.get("skipped", 0)),
        "capped": bool(counters.get("capped", False)),
        "error_message": job.error_message,
        "params": job.params,
        "attempts": job.attempts,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }
