"""Relabeling a dataset with a model: the ``relabel`` job.

Each selected entry's input goes to any routable model through the router (not over HTTP, and
not logged as a request), a few calls in flight at a time. The new assistant message replaces
the output; the first output replaced is kept in ``original_output`` (the entry API returns
it, ready to become a DPO ``rejected_message``). A failed entry is counted in ``skipped``; the
job is ERROR only when every entry failed, or when the model cannot be routed.

Entries are taken in id order, a page at a time, and the job's progress records the last id
done: an attempt that died resumes after it instead of paying for the model calls again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tunepipe.db import datasets as repo
from tunepipe.db.database import Database
from tunepipe.domain.dataset_entries import EntryData, EntryInvalid, check_assistant
from tunepipe.domain.jobs import Job, JobKind
from tunepipe.domain.model_ref import parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, TunepipeError
from tunepipe.protocol.datasets import RelabelRequest
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.datasets.imports import first_choice
from tunepipe.services.datasets.service import queue_dataset_job
from tunepipe.services.gateway.routing import Route, Router
from tunepipe.services.jobs.context import JobContext, JobFailed

PAGE = 100
CONCURRENCY = 4


def relabel_body(route: Route, data: EntryData) -> dict[str, Any]:
    body: dict[str, Any] = {"model": route.ref.name, "messages": data.messages}
    if data.tools:
        body["tools"] = data.tools
    if data.tool_choice is not None:
        body["tool_choice"] = data.tool_choice
    if data.response_format is not None:
        body["response_format"] = data.response_format
    return body


class Relabeling:
    def __init__(
        self,
        db: Database,
        router: Router,
        *,
        max_attempts: int,
        concurrency: int = CONCURRENCY,
        feed: ChangeFeed | None = None,
    ) -> None:
        self._db = db
        self._feed = feed
        self._router = router
        self._max_attempts = max_attempts
        self._concurrency = concurrency

    async def start(self, principal: Principal, dataset_id: str, body: RelabelRequest) -> Job:
        if body.entry_ids is not None and body.split is not None:
            raise InvalidRequest("Send `entry_ids` or `split`, not both", param="split")
        parse_model(body.model)  # a malformed name is a 400; an unroutable one fails the job
        params = body.model_dump(mode="json", exclude_none=True)

        return await queue_dataset_job(
            self._db,
            self._feed,
            principal,
            dataset_id,
            JobKind.RELABEL,
            params,
            max_attempts=self._max_attempts,
        )

    async def __call__(self, ctx: JobContext) -> dict[str, Any]:
        job = ctx.job
        body = RelabelRequest.model_validate(job.params)
        principal = await ctx.principal()
        try:
            route = await self._router.resolve(principal, parse_model(body.model))
        except TunepipeError as exc:
            raise JobFailed(f"Cannot relabel with {body.model!r}: {exc.message}") from exc
        if body.entry_ids is not None:
            total = len(body.entry_ids)
        else:
            total = await self._db.run(repo.count_entries, job.project_id, job.subject_id, body.split)
        done = int(ctx.progress.get("done", 0))
        relabeled = int(ctx.progress.get("created", 0))
        failed = int(ctx.progress.get("skipped", 0))
        last_error: str | None = ctx.progress.get("last_error")
        await ctx.report(stage="relabeling", total=total, done=done, created=relabeled, skipped=failed)
        gate = asyncio.Semaphore(self._concurrency)
        async for ids in self._pages(job, body, after=str(ctx.progress.get("after") or ""), done=done):
            ctx.checkpoint()
            results = await asyncio.gather(*(self._relabel_one(gate, route, job, i) for i in ids))
            for error in results:
                done += 1
                if error is None:
                    relabeled += 1
                else:
                    failed, last_error = failed + 1, error
            await ctx.report(
                done=done, created=relabeled, skipped=failed, after=ids[-1], last_error=last_error
            )
        if failed and not relabeled:
            raise JobFailed(f"Every entry failed ({failed}); the last error: {last_error}")
        if failed:
            ctx.note = f"{failed} entries failed; the last error: {last_error}"
        return {"total": total, "done": done, "created": relabeled, "skipped": failed}

    async def _pages(
        self, job: Job, body: RelabelRequest, *, after: str, done: int
    ) -> AsyncIterator[list[str]]:
        if body.entry_ids is not None:
            for start in range(done, len(body.entry_ids), PAGE):
                yield body.entry_ids[start : start + PAGE]
            return
        while True:
            ids = await self._db.run(
                repo.entry_id_page, job.project_id, job.subject_id, body.split, after, PAGE
            )
            if ids:
                yield ids
            if len(ids) < PAGE:
                return
            after = ids[-1]

    async def _relabel_one(
        self, gate: asyncio.Semaphore, route: Route, job: Job, entry_id: str
    ) -> str | None:
        """Relabel one entry; return why it failed, or None."""
        async with gate:
            entry = await self._db.run(repo.get_entry, job.project_id, job.subject_id, entry_id)
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
            await self._db.run(repo.update_entry, job.project_id, job.subject_id, entry_id, changes)
            return None
