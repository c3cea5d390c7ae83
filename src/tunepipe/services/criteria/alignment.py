"""A criterion's alignment set: rows humans label PASS/FAIL, judged by each version, and how well
each version's judge agrees with the humans (spec B.6).

The set belongs to the criterion's name, so every version is measured on the same rows and
versions compare side by side. Rows come from an API body or a JSONL upload (at most 10 MB, all
or nothing, errors by line number), or are sampled from a dataset with the entries' own outputs
or outputs a chosen model generates (shared with evaluations, :mod:`..datasets.outputs`).

Judging the set is an ``align`` job (subject: the criterion version): rows this version has not
judged yet are judged, a batch at a time, each batch stored as it completes, so a retried job
pays only for what is left; ``rerun`` judges every row again.
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Sequence
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Connection

from tunepipe.db import criteria as repo
from tunepipe.db import datasets as dataset_repo
from tunepipe.db.database import Database
from tunepipe.domain.alignment import (
    MAX_UPLOAD_BYTES,
    AlignmentRow,
    AlignmentStats,
    RowJudgement,
    alignment_stats,
    judge_says,
    parse_row,
)
from tunepipe.domain.criteria import Criterion, Sample
from tunepipe.domain.dataset_entries import EntryInvalid
from tunepipe.domain.evals import DATASET_MODEL
from tunepipe.domain.jobs import Job, JobKind
from tunepipe.domain.json_depth import depth_exceeds, max_depth
from tunepipe.domain.model_ref import parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, NotFound, TunepipeError, for_status
from tunepipe.protocol.criteria import SampleRowsRequest
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.criteria.service import criterion_in
from tunepipe.services.datasets.outputs import EntryOutputs
from tunepipe.services.datasets.service import dataset_in
from tunepipe.services.datasets.upload import iter_lines, read_chunks
from tunepipe.services.gateway.judge import Judge
from tunepipe.services.jobs import queue
from tunepipe.services.jobs.context import JobContext, JobFailed

BATCH = 20
MAX_ERRORS = 100
GENERATION_CONCURRENCY = 8


def _rows_or_errors(
    raw_rows: Sequence[tuple[int, Any]],
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    rows, errors = [], []
    for where, raw in raw_rows:
        try:
            rows.append(parse_row(raw))
        except EntryInvalid as exc:
            errors.append((where, str(exc)))
    return rows, errors


def _existing(conn: Connection, principal: Principal, name: str) -> Criterion:
    return criterion_in(conn, principal, name)


class Alignment:
    def __init__(
        self,
        db: Database,
        judge: Judge,
        outputs: EntryOutputs,
        *,
        max_attempts: int,
        feed: ChangeFeed | None = None,
    ) -> None:
        self._db = db
        self._judge = judge
        self._outputs = outputs
        self._max_attempts = max_attempts
        self._feed = feed

    # Rows

    async def _insert(self, principal: Principal, name: str, rows: list[dict[str, Any]]) -> int:
        def insert(conn: Connection) -> int:
            criterion = _existing(conn, principal, name)
            return repo.add_rows(conn, principal.project.id, criterion.name, rows)

        return await self._db.run(insert)

    async def add(self, principal: Principal, name: str, raw_rows: Sequence[Any]) -> int:
        """Add rows from an API body; any invalid row is a 400 naming its index, nothing added."""
        rows, errors = _rows_or_errors(list(enumerate(raw_rows)))
        if errors:
            index, message = errors[0]
            raise InvalidRequest(f"rows[{index}]: {message}", param=f"rows[{index}]")
        for row in rows:
            row["source"] = "upload"
        return await self._insert(principal, name, rows)

    async def upload(
        self, principal: Principal, name: str, file: BinaryIO
    ) -> tuple[int, list[tuple[int, str]]]:
        """A JSONL file, all or nothing: (rows added, errors by line number)."""
        await self._db.run(_existing, principal, name)  # 404 before reading a byte
        data = await asyncio.to_thread(file.read, MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise for_status(413, f"An alignment set upload is at most {MAX_UPLOAD_BYTES // (1 << 20)} MB")
        parsed: list[tuple[int, Any]] = []
        errors: list[tuple[int, str]] = []
        for number, line in iter_lines(read_chunks(io.BytesIO(data))):
            if line is None or not line.strip():
                errors.append((number, "empty row" if line is not None else "line too long"))
                continue
            try:
                parsed.append((number, _json(line)))
            except ValueError as exc:
                errors.append((number, f"invalid JSON: {exc}"))
        rows, invalid = _rows_or_errors(parsed)
        errors = sorted(errors + invalid)
        if not rows and not errors:
            errors = [(1, "the file has no rows")]
        if errors:
            return 0, errors[:MAX_ERRORS]
        for row in rows:
            row["source"] = "upload"
        return await self._insert(principal, name, rows), []

    async def sample(self, principal: Principal, name: str, body: SampleRowsRequest) -> int:
        """Add ``count`` random entries of a dataset (seeded), with their own outputs or a model's."""
        if body.output_source != DATASET_MODEL:
            parse_model(body.output_source)

        def pick(conn: Connection) -> list[Any]:
            _existing(conn, principal, name)
            ds = dataset_in(conn, principal, body.dataset_id)
            ids: list[str] = []
            after = ""
            while page := dataset_repo.entry_id_page(conn, ds.project_id, ds.id, body.split, after, 1000):
                ids.extend(page)
                after = page[-1]
            chosen = random.Random(body.seed).sample(ids, min(body.count, len(ids)))
            found = (dataset_repo.get_entry(conn, ds.project_id, ds.id, i) for i in chosen)
            return [e for e in found if e is not None]

        entries = await self._db.run(pick)
        if not entries:
            raise InvalidRequest("The dataset has no entries to sample", param="dataset_id")
        gate = asyncio.Semaphore(GENERATION_CONCURRENCY)

        async def output_of(entry: Any) -> dict[str, Any]:
            if body.output_source == DATASET_MODEL:
                return dict(entry.data.output)
            async with gate:
                return (await self._outputs.answer(principal, body.output_source, entry)).output.output

        try:
            outputs = await asyncio.gather(*(output_of(e) for e in entries))
        except TunepipeError as exc:
            raise InvalidRequest(
                f"Generating outputs with {body.output_source!r} failed: {exc.message}", param="output_source"
            ) from exc
        source = "dataset" if body.output_source == DATASET_MODEL else "model"
        rows = [
            {
                "messages": e.data.messages,
                "output": out,
                "tools": e.data.tools,
                "tool_choice": e.data.tool_choice,
                "judgement": None,
                "source": source,
                "dataset_entry_id": e.id,
            }
            for e, out in zip(entries, outputs, strict=True)
        ]
        return await self._insert(principal, name, rows)

    async def rows(
        self, principal: Principal, criterion_id: str
    ) -> tuple[Criterion, list[tuple[AlignmentRow, RowJudgement | None]]]:
        """The set, each row with what ``criterion_id``'s version (latest when unpinned) said."""

        def load(conn: Connection) -> tuple[Criterion, list[tuple[AlignmentRow, RowJudgement | None]]]:
            criterion = criterion_in(conn, principal, criterion_id)
            judged = repo.judgements_for(conn, criterion.id)
            rows = repo.list_rows(conn, principal.project.id, criterion.name)
            return criterion, [(r, judged.get(r.id)) for r in rows]

        return await self._db.run(load)

    async def label(self, principal: Principal, name: str, row_id: str, judgement: str | None) -> None:
        def label(conn: Connection) -> None:
            criterion = _existing(conn, principal, name)
            if not repo.label_row(conn, principal.project.id, criterion.name, row_id, judgement):
                raise NotFound(f"No alignment row {row_id!r} for criterion {criterion.name}")

        await self._db.run(label)

    async def delete_row(self, principal: Principal, name: str, row_id: str) -> None:
        def delete(conn: Connection) -> None:
            criterion = _existing(conn, principal, name)
            if not repo.delete_row(conn, principal.project.id, criterion.name, row_id):
                raise NotFound(f"No alignment row {row_id!r} for criterion {criterion.name}")

        await self._db.run(delete)

    # Statistics

    async def stats(
        self, principal: Principal, criterion_id: str
    ) -> tuple[Criterion, AlignmentStats, float, list[tuple[AlignmentRow, RowJudgement]]]:
        """Agreement of one version with the humans, what its judging cost, and the rows where
        the two disagree."""
        criterion, rows = await self.rows(principal, criterion_id)
        stats = alignment_stats((r.judgement, j.score if j else None) for r, j in rows)
        cost = sum(j.cost for _, j in rows if j is not None)
        disagreements = [
            (r, j)
            for r, j in rows
            if j is not None and j.score is not None and r.judgement and judge_says(j.score) != r.judgement
        ]
        return criterion, stats, cost, disagreements

    async def compare(self, principal: Principal, name: str) -> list[tuple[Criterion, AlignmentStats, float]]:
        """Every version's agreement with the humans, oldest first."""
        versions = await self._db.run(repo.list_versions, principal.project.id, name)
        if not versions:
            await self._db.run(_existing, principal, name)  # the 404
        out = []
        for v in versions:
            criterion, stats, cost, _ = await self.stats(principal, v.ref)
            out.append((criterion, stats, cost))
        return out

    # The `align` job

    async def start(self, principal: Principal, criterion_id: str, *, rerun: bool) -> Job:
        def start(conn: Connection) -> Job:
            criterion = criterion_in(conn, principal, criterion_id)
            if not repo.list_rows(conn, principal.project.id, criterion.name):
                raise InvalidRequest(
                    f"Criterion {criterion.name} has no alignment rows yet", param="criterion_id"
                )
            return queue.enqueue(
                conn,
                JobKind.ALIGN,
                principal.project.id,
                criterion.id,
                params={"criterion": criterion.ref, "rerun": rerun},
                max_attempts=self._max_attempts,
            )

        job = await self._db.run(start)
        if self._feed is not None:
            self._feed.changed(queue.SCOPE, job.kind)
        return job

    async def __call__(self, ctx: JobContext) -> dict[str, Any]:
        job = ctx.job
        principal = await ctx.principal()
        criterion = await self._db.run(repo.get_by_id, job.project_id, job.subject_id)
        if criterion is None:
            raise JobFailed("the criterion was deleted")
        rows = await self._db.run(repo.list_rows, job.project_id, criterion.name)
        judged = await self._db.run(repo.judgements_for, criterion.id)
        rerun_from = int(ctx.progress.get("done", 0)) if job.params.get("rerun") else None
        todo = rows[rerun_from:] if rerun_from is not None else [r for r in rows if r.id not in judged]
        done = len(rows) - len(todo)
        await ctx.report(stage="judging", total=len(rows), done=done)
        for start in range(0, len(todo), BATCH):
            ctx.checkpoint()
            batch = todo[start : start + BATCH]
            results = await asyncio.gather(*(self._judge_row(principal, criterion, r) for r in batch))
            await self._db.run(repo.save_judgements, results)
            done += len(batch)
            await ctx.report(done=done)
        _, stats, cost, _ = await self.stats(principal, criterion.ref)
        return {"criterion": criterion.ref, **stats.as_dict(), "cost_usd": round(cost, 8)}

    async def _judge_row(self, principal: Principal, criterion: Criterion, row: AlignmentRow) -> RowJudgement:
        sample = Sample(
            messages=row.messages, output=row.output, tools=row.tools, tool_choice=row.tool_choice
        )
        judged = await self._judge.criterion(principal, criterion, sample)
        r = judged.result
        if r.status != "success":
            return RowJudgement(row.id, criterion.id, None, None, r.error_message, judged.cost)
        return RowJudgement(row.id, criterion.id, r.score, r.explanation, None, judged.cost)


def _json(line: bytes) -> Any:
    if depth_exceeds(line, max_depth.get()):
        raise ValueError(f"JSON nested deeper than {max_depth.get()} levels")
    try:
        return orjson.loads(line.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from exc
