"""Background jobs over a dataset: import from request logs, and relabeling with a model.

A job is a row of ``dataset_jobs`` and an asyncio task of this server process. The request that
starts one answers 202 with the job at once; the task writes its counters after every batch, so
``GET /datasets/{id}/jobs/{jobId}`` shows progress. Jobs do not survive their process: at
start-up any job still QUEUED or RUNNING is marked ERROR ("interrupted by a restart"), and on
shutdown the running ones stop after their current batch and are marked ERROR too.

*Import* scans the matching successful calls (the filters of ``GET /logs``) newest first, page
by page in a worker thread. Each call becomes an entry (request messages + the response's first
choice, the request's tools, tool_choice and response_format); calls that do not make a valid
entry are skipped, and so are, with ``dedupe``, entries whose input and output are already in
the dataset or earlier in the same import. With ``sample_size`` the entries kept are a uniform
random sample of those candidates (reservoir sampling, seeded: the seed used is stored in the
job's params, and the same seed over the same logs picks the same calls).

*Relabel* sends each selected entry's input to any routable model through the router (not over
HTTP, and not logged as a request), a few calls in flight at a time. The new assistant message
replaces the output; the first output replaced is kept in ``original_output`` (the entry API
returns it, ready to become a DPO ``rejected_message``). A failed entry is counted in
``skipped``; the job is ERROR only when every entry failed, or when the model cannot be routed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from tunepipe.db import dataset_jobs as repo
from tunepipe.db import datasets as datasets_repo
from tunepipe.db import log_queries
from tunepipe.db.dataset_jobs import DatasetJob, pair_key
from tunepipe.db.datasets import Dataset, NewEntry
from tunepipe.db.log_queries import LogFilter, LoggedCall
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.records import Principal
from tunepipe.domain.dataset_entries import EntryData, EntryInvalid, check_assistant, parse_entry
from tunepipe.domain.model_ref import ModelRef, parse_model
from tunepipe.errors import InvalidRequest, NotFound, TunepipeError
from tunepipe.protocol.dataset_jobs import ImportLogsRequest, LogImportFilters, RelabelRequest
from tunepipe.services.datasets import DatasetService, iso, with_split
from tunepipe.services.routing import Route, Router

log = logging.getLogger(__name__)

RESTART_MESSAGE = "interrupted by a restart"
SHUTDOWN_MESSAGE = "interrupted by a shutdown"
IMPORT_BATCH = 500
RELABEL_BATCH = 100
OUTPUT_KEYS = ("role", "content", "tool_calls", "function_call")


class JobFailed(Exception):
    """The job as a whole failed; the message is shown as its ``error_message``."""


class JobStopped(Exception):
    """The server is shutting down."""


def job_view(job: DatasetJob) -> dict[str, Any]:
    return {
        "object": "dataset.job",
        "id": job.id,
        "dataset_id": job.dataset_id,
        "kind": job.kind,
        "status": job.status,
        "done": job.done,
        "total": job.total,
        "created": job.created,
        "skipped": job.skipped,
        "error_message": job.error_message,
        "params": job.params,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }


def parse_time(value: int | str | None, name: str) -> int | None:
    """Unix milliseconds, or an ISO 8601 time (UTC when it has no offset)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) or value.lstrip("-").isdigit():
        ms = int(value)
        if abs(ms) >= 2**63:
            raise InvalidRequest(f"`filters.{name}` is out of range", param=f"filters.{name}")
        return ms
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(
            f"`filters.{name}` must be Unix milliseconds or an ISO 8601 time", param=f"filters.{name}"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def import_filter(filters: LogImportFilters) -> LogFilter:
    """The log filter of an import: the filters as sent, successful calls only."""
    texts = [filters.model or "", filters.contains or "", *filters.metadata, *filters.metadata.values()]
    if any("\x00" in t for t in texts):
        raise InvalidRequest("Filters cannot contain NUL characters", param="filters")
    if any(len(k) > log_queries.MAX_METADATA_KEY for k in filters.metadata):
        raise InvalidRequest("Metadata keys are at most 200 characters", param="filters.metadata")
    return LogFilter(
        since_ms=parse_time(filters.since, "since"),
        until_ms=parse_time(filters.until, "until"),
        model=filters.model or None,
        status_code=filters.status,
        metadata=dict(filters.metadata),
        contains=filters.contains or None,
        only_success=True,
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


def relabel_body(route: Route, data: EntryData) -> dict[str, Any]:
    body: dict[str, Any] = {"model": route.ref.name, "messages": data.messages}
    if data.tools:
        body["tools"] = data.tools
    if data.tool_choice is not None:
        body["tool_choice"] = data.tool_choice
    if data.response_format is not None:
        body["response_format"] = data.response_format
    return body


class DatasetJobService:
    def __init__(
        self,
        engine: Engine,
        datasets: DatasetService,
        router: Router,
        writer: LogWriter,
        *,
        concurrency: int = 4,
    ) -> None:
        self._engine = engine
        self._datasets = datasets
        self._router = router
        self._writer = writer
        self._concurrency = concurrency
        self._stop = threading.Event()
        self._tasks: dict[asyncio.Task[None], str] = {}  # task → job kind

    async def start(self) -> None:
        """Mark the jobs a previous process left unfinished. (With several server processes
        sharing a database, the last to start would also mark its siblings' running jobs.)"""
        count = await asyncio.to_thread(repo.interrupt_unfinished, self._engine, RESTART_MESSAGE)
        if count:
            log.warning("%d dataset job(s) were interrupted by a restart", count)

    async def close(self) -> None:
        """Stop running jobs (imports after their current batch), marking them ERROR."""
        self._stop.set()
        for task, kind in list(self._tasks.items()):
            if kind == "relabel":
                task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # Reads

    async def list_jobs(self, principal: Principal, dataset_id: str) -> list[DatasetJob]:
        ds = await self._datasets.get(principal, dataset_id)
        return await asyncio.to_thread(repo.list_jobs, self._engine, principal.project.id, ds.id)

    async def get_job(self, principal: Principal, dataset_id: str, job_id: str) -> DatasetJob:
        ds = await self._datasets.get(principal, dataset_id)
        job = None
        if "\x00" not in job_id:
            job = await asyncio.to_thread(repo.get_job, self._engine, principal.project.id, ds.id, job_id)
        if job is None:
            raise NotFound(f"No job {job_id!r} in dataset {dataset_id!r}")
        return job

    # Starting jobs

    async def import_logs(self, principal: Principal, dataset_id: str, body: ImportLogsRequest) -> DatasetJob:
        ds = await self._datasets.get(principal, dataset_id)
        f = import_filter(body.filters)
        seed = body.seed if body.seed is not None else random.randrange(2**31)
        params = {**body.model_dump(mode="json"), "seed": seed}
        await self._writer.flush()  # calls answered before this request are importable
        job = await asyncio.to_thread(
            repo.create_job, self._engine, principal.project.id, ds.id, "import_logs", params
        )
        run = self._run_import
        self._spawn(job, "import_logs", lambda: asyncio.to_thread(run, job, ds, f, body, seed))
        return job

    async def relabel(self, principal: Principal, dataset_id: str, body: RelabelRequest) -> DatasetJob:
        ds = await self._datasets.get(principal, dataset_id)
        if body.entry_ids is not None and body.split is not None:
            raise InvalidRequest("Send `entry_ids` or `split`, not both", param="split")
        if body.entry_ids is not None and any("\x00" in i for i in body.entry_ids):
            raise InvalidRequest("Entry ids cannot contain NUL characters", param="entry_ids")
        ref = parse_model(body.model)  # a malformed name is a 400; an unroutable one fails the job
        params = body.model_dump(mode="json", exclude_none=True)
        job = await asyncio.to_thread(
            repo.create_job, self._engine, principal.project.id, ds.id, "relabel", params
        )
        self._spawn(job, "relabel", lambda: self._run_relabel(job, principal, ds, body, ref))
        return job

    def _spawn(self, job: DatasetJob, kind: str, run: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.create_task(self._guard(job, run), name=f"dataset-job-{job.id}")
        self._tasks[task] = kind
        task.add_done_callback(lambda t: self._tasks.pop(t, None))

    async def _guard(self, job: DatasetJob, run: Callable[[], Awaitable[None]]) -> None:
        """The task boundary: whatever ends the job, its row says how."""
        try:
            await run()
        except asyncio.CancelledError:
            await self._finish(job, "ERROR", SHUTDOWN_MESSAGE)
            raise
        except JobStopped:
            await self._finish(job, "ERROR", SHUTDOWN_MESSAGE)
        except JobFailed as exc:
            await self._finish(job, "ERROR", str(exc))
        except Exception as exc:
            log.exception("dataset job %s failed", job.id)
            await self._finish(job, "ERROR", f"internal error: {exc}")

    async def _finish(self, job: DatasetJob, status: str, message: str | None) -> None:
        try:
            await asyncio.to_thread(
                repo.update_job, self._engine, job.id, status=status, error_message=message
            )
        except Exception:
            log.exception("could not record the end of dataset job %s", job.id)

    # Import (runs in a worker thread)

    def _run_import(
        self, job: DatasetJob, ds: Dataset, f: LogFilter, body: ImportLogsRequest, seed: int
    ) -> None:
        engine, project_id = self._engine, job.project_id
        repo.update_job(engine, job.id, status="RUNNING")
        seen = repo.entry_pair_keys(engine, project_id, ds.id) if body.dedupe else set()
        rng = random.Random(seed)
        reservoir: list[NewEntry] = []
        batch: list[NewEntry] = []
        done = created = skipped = candidates = 0
        for call in log_queries.iter_calls(engine, project_id, f, page_size=IMPORT_BATCH):
            done += 1
            entry = self._candidate(call, ds, seen, body.dedupe)
            if entry is None:
                skipped += 1
            elif body.sample_size is None:
                batch.append(entry)
            elif candidates < body.sample_size:
                reservoir.append(entry)
            elif (slot := rng.randrange(candidates + 1)) < body.sample_size:
                reservoir[slot] = entry
            candidates += entry is not None
            if done % IMPORT_BATCH == 0:
                if self._stop.is_set():
                    raise JobStopped
                created += datasets_repo.insert_entries(engine, project_id, ds.id, batch)
                batch = []
                repo.update_job(engine, job.id, done=done, created=created, skipped=skipped)
        created += datasets_repo.insert_entries(engine, project_id, ds.id, batch)
        for start in range(0, len(reservoir), IMPORT_BATCH):
            created += datasets_repo.insert_entries(
                engine, project_id, ds.id, reservoir[start : start + IMPORT_BATCH]
            )
        repo.update_job(
            engine, job.id, status="DONE", done=done, total=done, created=created, skipped=skipped
        )

    @staticmethod
    def _candidate(call: LoggedCall, ds: Dataset, seen: set[bytes], dedupe: bool) -> NewEntry | None:
        try:
            data = with_split(entry_from_call(call), ds.train_ratio)
        except EntryInvalid:
            return None
        if dedupe:
            key = pair_key(data.input_hash, data.output)
            if key in seen:
                return None
            seen.add(key)
        return NewEntry(data, "REQUEST_LOG", logged_call_id=call.id)

    # Relabel

    async def _run_relabel(
        self, job: DatasetJob, principal: Principal, ds: Dataset, body: RelabelRequest, ref: ModelRef
    ) -> None:
        engine, project_id = self._engine, principal.project.id
        try:
            route = await self._router.resolve(principal, ref)
        except TunepipeError as exc:
            raise JobFailed(f"Cannot relabel with {body.model!r}: {exc.message}") from exc
        if body.entry_ids is not None:
            total = len(body.entry_ids)
        else:
            total = await asyncio.to_thread(repo.count_entries, engine, project_id, ds.id, body.split)
        await asyncio.to_thread(repo.update_job, engine, job.id, status="RUNNING", total=total)
        gate = asyncio.Semaphore(self._concurrency)
        done = relabeled = failed = 0
        last_error: str | None = None
        async for ids in self._id_pages(project_id, ds.id, body):
            results = await asyncio.gather(
                *(self._relabel_one(gate, route, project_id, ds.id, i) for i in ids)
            )
            for error in results:
                done += 1
                if error is None:
                    relabeled += 1
                else:
                    failed, last_error = failed + 1, error
            await asyncio.to_thread(
                repo.update_job, engine, job.id, done=done, created=relabeled, skipped=failed
            )
        if failed and not relabeled:
            raise JobFailed(f"Every entry failed ({failed}); the last error: {last_error}")
        summary = f"{failed} entries failed; the last error: {last_error}" if failed else None
        await asyncio.to_thread(repo.update_job, engine, job.id, status="DONE", error_message=summary)

    async def _id_pages(
        self, project_id: str, dataset_id: str, body: RelabelRequest
    ) -> AsyncIterator[list[str]]:
        if body.entry_ids is not None:
            for start in range(0, len(body.entry_ids), RELABEL_BATCH):
                yield body.entry_ids[start : start + RELABEL_BATCH]
            return
        after = ""
        while True:
            ids = await asyncio.to_thread(
                repo.entry_id_page, self._engine, project_id, dataset_id, body.split, after, RELABEL_BATCH
            )
            if ids:
                yield ids
            if len(ids) < RELABEL_BATCH:
                return
            after = ids[-1]

    async def _relabel_one(
        self, gate: asyncio.Semaphore, route: Route, project_id: str, dataset_id: str, entry_id: str
    ) -> str | None:
        """Relabel one entry; return why it failed, or None."""
        async with gate:
            entry = await asyncio.to_thread(
                datasets_repo.get_entry, self._engine, project_id, dataset_id, entry_id
            )
            if entry is None:
                return f"no entry {entry_id!r} in this dataset"
            try:
                completion = await route.provider.complete(relabel_body(route, entry.data))
                output = check_assistant(first_choice(completion.data), "the model's answer")
            except (TunepipeError, EntryInvalid) as exc:
                return str(exc)
            changes: dict[str, Any] = {"output": output, "provenance": "RELABELED_BY_MODEL"}
            if entry.original_output is None:
                changes["original_output"] = entry.data.output
            await asyncio.to_thread(
                datasets_repo.update_entry, self._engine, project_id, dataset_id, entry_id, changes
            )
            return None
