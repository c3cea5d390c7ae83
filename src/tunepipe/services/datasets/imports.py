"""Importing request logs into a dataset: the ``import_logs`` job.

Starting an import checks the request, flushes this process's log writer (so the calls answered
before it are importable) and queues the job, answering at once with it; a worker runs it.

The job scans the matching successful calls (the filters of ``GET /logs``) newest first, a page
per transaction, so it never holds the database for long. Each call becomes an entry (request
messages + the response's first choice, the request's tools, tool_choice and response_format);
calls that do not make a valid entry are skipped, and so are, with ``dedupe``, entries whose
input and output are already in the dataset or earlier in the same import. With
``sample_size`` the entries kept are a uniform random sample of those candidates (reservoir
sampling, seeded: the seed used is stored in the job's params, and the same seed over the same
logs picks the same calls). An import stops at ``max_entries``, at most the installation's
``dataset_import_max`` (the result says ``capped``).

Calls picked one by one (the web UI's selection, :meth:`LogImports.add_calls`) are added at once,
without a job, each made into an entry the same way.

Every entry records the job that made it, so an attempt that died half-way is undone before the
next attempt starts over: an import is never counted twice.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from tunepipe.db import datasets as repo
from tunepipe.db import log_queries
from tunepipe.db.database import Database
from tunepipe.db.log_writer import LogWriter
from tunepipe.domain.dataset_entries import EntryData, EntryInvalid, parse_entry
from tunepipe.domain.datasets import Dataset, NewEntry
from tunepipe.domain.jobs import Job, JobKind
from tunepipe.domain.logs import LogFilter, LoggedCall
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest
from tunepipe.protocol.datasets import ImportLogsRequest, LogImportFilters
from tunepipe.protocol.logs import parse_time
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.datasets.service import dataset_in, queue_dataset_job, with_split
from tunepipe.services.jobs.context import JobContext, JobFailed

PAGE = 500
MAX_CHOSEN = 500  # calls added to a dataset by hand at once
OUTPUT_KEYS = ("role", "content", "tool_calls", "function_call")


def import_filter(filters: LogImportFilters) -> LogFilter:
    """The log filter of an import: the filters as sent, successful calls only."""
    if any(len(k) > log_queries.MAX_METADATA_KEY for k in filters.metadata):
        raise InvalidRequest(
            f"Metadata keys are at most {log_queries.MAX_METADATA_KEY} characters", param="filters.metadata"
        )
    return LogFilter(
        since_ms=parse_time(filters.since, "filters.since"),
        until_ms=parse_time(filters.until, "filters.until"),
        model=filters.model or None,
        status_code=filters.status,
        metadata=dict(filters.metadata),
        contains=filters.contains or None,
        only_success=True,
        judges=False,  # a judge's verdict is no example of the task
    )


def _clean_output(message: Any) -> Any:
    """The assistant message as a training target: no ``refusal``/``annotations`` noise."""
    if not isinstance(message, dict):
        return message
    out = {k: message[k] for k in OUTPUT_KEYS if message.get(k) is not None}
    if "content" not in out and not out.get("tool_calls") and not out.get("function_call"):
        out["content"] = message.get("content")
    if out.get("tool_calls") == []:
        out.pop("tool_calls")
    return out


def first_choice(response: Any) -> Any:
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise EntryInvalid("the response has no choices")
    return _clean_output(choices[0].get("message"))


def entry_from_call(call: LoggedCall) -> EntryData:
    """A logged call as an entry; raises :class:`EntryInvalid` for one that is not one."""
    request = call.request
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        raise EntryInvalid("the logged request is not a chat request")
    raw: dict[str, Any] = {"messages": [*request["messages"], first_choice(call.response)]}
    for key in ("tools", "tool_choice", "response_format", "functions", "function_call"):
        if request.get(key) is not None:
            raw[key] = request[key]
    raw["metadata"] = {k: v for k, v in call.metadata.items() if isinstance(v, str)}
    return parse_entry(raw)


@dataclass(slots=True)
class _Scan:
    """An import in progress: counters, the candidates kept for sampling, the keys seen."""

    request: ImportLogsRequest
    dataset: Dataset
    job_id: str
    limit: int
    rng: random.Random
    seen: set[bytes]
    after: tuple[int, str] | None = None
    done: int = 0
    created: int = 0
    skipped: int = 0
    candidates: int = 0
    capped: bool = False
    reservoir: list[NewEntry] = field(default_factory=list)

    def counters(self) -> dict[str, Any]:
        return {"done": self.done, "created": self.created, "skipped": self.skipped}

    def candidate(self, call: LoggedCall) -> NewEntry | None:
        try:
            data = with_split(entry_from_call(call), self.dataset.train_ratio)
        except EntryInvalid:
            return None
        if self.request.dedupe:
            key = repo.pair_key(data.input_hash, data.output)
            if key in self.seen:
                return None
            self.seen.add(key)
        return NewEntry(data, "REQUEST_LOG", logged_call_id=call.id, job_id=self.job_id)

    def take(self, entry: NewEntry | None, batch: list[NewEntry]) -> None:
        size = self.request.sample_size
        if entry is None:
            self.skipped += 1
        elif size is None:
            if self.created + len(batch) >= self.limit:
                self.capped = True
                return
            batch.append(entry)
        elif self.candidates < size:
            self.reservoir.append(entry)
        elif (slot := self.rng.randrange(self.candidates + 1)) < size:
            self.reservoir[slot] = entry
        self.candidates += entry is not None

    def page(self, conn: Connection, f: LogFilter) -> bool:
        """Scan one page of calls and insert what it yields; False when the scan is over."""
        calls, _ = log_queries.list_calls(
            conn, self.dataset.project_id, f, after=self.after, limit=PAGE, with_bodies=True
        )
        batch: list[NewEntry] = []
        for call in calls:
            self.after = (call.requested_at, call.id)
            self.take(self.candidate(call), batch)
            if self.capped:
                break
            self.done += 1
        self.created += repo.insert_entries(conn, self.dataset.project_id, self.dataset.id, batch)
        return len(calls) == PAGE and not self.capped

    def finish(self, conn: Connection) -> None:
        for start in range(0, len(self.reservoir), PAGE):
            self.created += repo.insert_entries(
                conn, self.dataset.project_id, self.dataset.id, self.reservoir[start : start + PAGE]
            )


class LogImports:
    def __init__(
        self,
        db: Database,
        writer: LogWriter,
        *,
        max_entries: int,
        max_attempts: int,
        feed: ChangeFeed | None = None,
    ) -> None:
        self._db = db
        self._feed = feed
        self._writer = writer
        self._max_entries = max_entries
        self._max_attempts = max_attempts

    async def start(self, principal: Principal, dataset_id: str, body: ImportLogsRequest) -> Job:
        import_filter(body.filters)  # a bad filter is a 400 now, not a failed job later
        if body.sample_size is not None and body.sample_size > self._max_entries:
            raise InvalidRequest(
                f"sample_size is at most {self._max_entries} (the import limit of this installation)",
                param="sample_size",
            )
        seed = body.seed if body.seed is not None else random.randrange(2**31)
        params = {**body.model_dump(mode="json"), "seed": seed}
        await self._writer.flush()  # calls answered before this request are importable

        return await queue_dataset_job(
            self._db,
            self._feed,
            principal,
            dataset_id,
            JobKind.IMPORT_LOGS,
            params,
            max_attempts=self._max_attempts,
        )

    async def add_calls(
        self, principal: Principal, dataset_id: str, call_ids: Sequence[str]
    ) -> tuple[int, int]:
        """Add chosen calls of the project to a dataset at once (no job: a page's selection is
        small), each made into an entry as an import makes it; how many were added and how many
        skipped (not found in the project, failed, or not a chat call that makes an entry)."""
        if len(call_ids) > MAX_CHOSEN:
            raise InvalidRequest(f"At most {MAX_CHOSEN} calls at once", param="call_ids")
        await self._writer.flush()

        def add(conn: Connection) -> tuple[int, int]:
            ds = dataset_in(conn, principal, dataset_id)
            entries: list[NewEntry] = []
            chosen = list(dict.fromkeys(call_ids))
            for call_id in chosen:
                call = log_queries.get_call(conn, principal.project.id, call_id)
                if call is None or call.status_code != 200:
                    continue
                try:
                    data = with_split(entry_from_call(call), ds.train_ratio)
                except EntryInvalid:
                    continue
                entries.append(NewEntry(data, "REQUEST_LOG", logged_call_id=call.id))
            added = repo.insert_entries(conn, principal.project.id, ds.id, entries)
            return added, len(chosen) - added

        return await self._db.run(add)

    async def __call__(self, ctx: JobContext) -> dict[str, Any]:
        """The job: scan, sample, insert; the result is the counters."""
        job = ctx.job
        body = ImportLogsRequest.model_validate({k: v for k, v in job.params.items() if k != "seed"})
        f = import_filter(body.filters)

        def prepare(conn: Connection) -> tuple[Dataset | None, set[bytes]]:
            repo.delete_job_entries(conn, job.subject_id, job.id)  # an earlier attempt's, if any
            ds = repo.get_dataset(conn, job.project_id, job.subject_id)
            seen = repo.entry_pair_keys(conn, job.project_id, job.subject_id) if ds and body.dedupe else set()
            return ds, seen

        dataset, seen = await self._db.run(prepare)
        if dataset is None:
            raise JobFailed("the dataset was deleted")
        limit = min(body.max_entries or self._max_entries, self._max_entries)
        scan = _Scan(body, dataset, job.id, limit, random.Random(job.params.get("seed")), seen)
        await ctx.report(stage="importing", **scan.counters())
        while await self._db.run(scan.page, f):
            ctx.checkpoint()
            await ctx.report(**scan.counters())
        await self._db.run(scan.finish)
        result = {**scan.counters(), "total": scan.done, "capped": scan.capped}
        await ctx.report(**result)
        return result
