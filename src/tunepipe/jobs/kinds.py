"""The job kinds this installation runs, each a handler from the composition root, and the
lanes that share a worker between them."""

from __future__ import annotations

from collections.abc import Iterable

from tunepipe.domain.jobs import JobKind
from tunepipe.jobs.worker import Lane, Worker
from tunepipe.services.container import Container
from tunepipe.services.jobs import queue
from tunepipe.services.jobs.context import Handler


def handlers(c: Container) -> dict[str, Handler]:
    return {
        JobKind.TRAIN: c.trainer,
        JobKind.IMPORT_LOGS: c.imports,
        JobKind.RELABEL: c.relabeling,
        JobKind.EVALUATE: c.eval_runner,
        JobKind.ALIGN: c.alignment,
    }


def lanes(c: Container) -> list[Lane]:
    """Training one job at a time (it uses the whole machine); dataset work and judging work a
    few at a time each, so a long evaluation never holds up an import."""
    return [
        Lane("training", (JobKind.TRAIN,), 1),
        Lane("datasets", (JobKind.IMPORT_LOGS, JobKind.RELABEL), c.settings.worker_dataset_jobs),
        Lane("evaluations", (JobKind.EVALUATE, JobKind.ALIGN), c.settings.worker_eval_jobs),
    ]


def build_worker(c: Container, kinds: Iterable[str] | None = None) -> Worker:
    """A worker for ``kinds`` (default: the ``worker_kinds`` setting, else every kind)."""
    wanted = set(kinds or c.settings.worker_kinds or [k.value for k in JobKind])
    unknown = wanted - {k.value for k in JobKind}
    if unknown:
        raise ValueError(f"unknown job kinds: {', '.join(sorted(unknown))} (known: {', '.join(JobKind)})")
    chosen = {kind: handler for kind, handler in handlers(c).items() if kind in wanted}
    worker = Worker(c.settings, c.db, chosen, lanes(c))
    c.feed.subscribe(queue.SCOPE, lambda _kind: worker.wake())  # a job was queued somewhere
    return worker
