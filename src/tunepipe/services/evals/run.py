"""The ``evaluate`` job: generate what outputs are missing and judge every entry, as a pipeline.

Entries flow through a bounded queue: a producer loads a page of entries with the outputs that
already exist for them (shared outputs, a fine-tune's test-set answers), and a pool of workers
takes one entry at a time, generates its missing outputs and judges it as soon as they are
there. Every model call (generation or judge) passes one semaphore of ``eval_concurrency``
slots, so generation and judging overlap and the upstreams never see more than that many calls
from one eval; memory holds a page and the entries in flight, not the eval.

Judgements are stored as they complete, a few at a time; a judgement already stored and
successful is never redone, so a retried job, or one queued again after models were added,
pays only for what is missing. Code graders run out of process (:mod:`tunepipe.graders`), a
batch of rows per child, fed by the same workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tunepipe.db import criteria as criteria_repo
from tunepipe.db import datasets as dataset_repo
from tunepipe.db import evals as repo
from tunepipe.db.database import Database
from tunepipe.db.model_outputs import ModelOutput
from tunepipe.domain.criteria import Criterion, Sample, parse_criterion_id, render_output
from tunepipe.domain.datasets import StoredEntry
from tunepipe.domain.evals import (
    Eval,
    EvalType,
    Judgement,
    pairs,
    reconcile,
    same_output,
    score_for_a,
    shown_first,
)
from tunepipe.domain.projects import Principal
from tunepipe.errors import TunepipeError
from tunepipe.graders import BUILTIN, Case, Limits, run_grader
from tunepipe.services.datasets.outputs import EntryOutputs
from tunepipe.services.evals.service import results_of
from tunepipe.services.gateway.judge import Judge, JudgeFailed
from tunepipe.services.jobs.context import JobContext, JobFailed

PAGE = 50
FLUSH_EVERY = 25
GRADER_BATCH = 50
COUNTERS = ("done", "generated", "reused", "judged", "errors")


@dataclass(slots=True)
class _Run:
    """One attempt's state, shared by its tasks (all on one event loop)."""

    ev: Eval
    principal: Principal
    criteria: list[Criterion]
    done: set[tuple[str, str, str, str]]
    gate: asyncio.Semaphore
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    pending: list[Judgement] = field(default_factory=list)
    cases: asyncio.Queue[tuple[StoredEntry, str, ModelOutput] | None] | None = None


def _wanted(run: _Run, entry_id: str) -> list[Judgement]:
    """The judgements this entry still needs, as empty rows (their keys)."""
    ev = run.ev
    if ev.type is EvalType.HEAD_TO_HEAD:
        rows = [Judgement(entry_id, a, opponent=b) for a, b in pairs(ev.models)]
    elif ev.type is EvalType.CRITERIA:
        rows = [Judgement(entry_id, m, criterion=c.ref) for m in ev.models for c in run.criteria]
    else:
        rows = [Judgement(entry_id, m) for m in ev.models]
    return [r for r in rows if r.key not in run.done]


def _sample(entry: StoredEntry, output: dict[str, Any]) -> Sample:
    return Sample(entry.data.messages, output, entry.data.tools, entry.data.tool_choice)


def _case(entry: StoredEntry, output: ModelOutput) -> Case:
    return Case(
        entry.data.messages, entry.data.tools, entry.data.tool_choice, output.output, entry.data.output
    )


class EvalRunner:
    def __init__(
        self, db: Database, judge: Judge, outputs: EntryOutputs, *, concurrency: int, grader_limits: Limits
    ) -> None:
        self._db = db
        self._judge = judge
        self._outputs = outputs
        self._concurrency = concurrency
        self._limits = grader_limits

    async def __call__(self, ctx: JobContext) -> dict[str, Any]:
        job = ctx.job
        principal = await ctx.principal()
        ev = await self._db.run(repo.get, job.project_id, job.subject_id)
        if ev is None:
            raise JobFailed("the eval was deleted")
        criteria = []
        for ref in ev.criteria:
            cid = parse_criterion_id(ref)
            found = await self._db.run(criteria_repo.get, ev.project_id, cid.name, cid.version)
            if found is None:
                raise JobFailed(f"Criterion {ref} was deleted")
            criteria.append(found)
        entry_ids = await self._db.run(repo.entry_ids, ev.id)
        done = await self._db.run(repo.done_keys, ev.id)
        run = _Run(ev, principal, criteria, done, asyncio.Semaphore(self._concurrency))
        await ctx.report(stage="evaluating", total=len(entry_ids), **run.counters)
        grading = None
        if ev.type is EvalType.CODE:
            run.cases = asyncio.Queue(maxsize=GRADER_BATCH * 2)
            grading = asyncio.create_task(self._grade(run))
        try:
            await self._pipeline(ctx, run, entry_ids)
        finally:
            if grading is not None:
                await run.cases.put(None)  # type: ignore[union-attr]
                await grading
        await self._flush(run)
        await ctx.report(**run.counters)
        return await self._db.run(results_of, ev)

    async def _pipeline(self, ctx: JobContext, run: _Run, entry_ids: Sequence[str]) -> None:
        items: asyncio.Queue[tuple[StoredEntry, dict[str, ModelOutput]] | None] = asyncio.Queue(
            maxsize=self._concurrency * 2
        )
        workers = self._concurrency * 2

        async def produce() -> None:
            for start in range(0, len(entry_ids), PAGE):
                page = entry_ids[start : start + PAGE]
                entries = await self._db.run(
                    dataset_repo.entries_by_id, run.ev.project_id, run.ev.dataset_id, page
                )
                found = [entries[i] for i in page if i in entries]
                run.counters["done"] += len(page) - len(found)  # deleted since: nothing to judge
                stored = {m: await self._outputs.stored(run.ev.project_id, m, found) for m in run.ev.models}
                for entry in found:
                    await items.put((entry, {m: s[entry.id] for m, s in stored.items() if entry.id in s}))
            for _ in range(workers):
                await items.put(None)

        async def work() -> None:
            while (item := await items.get()) is not None:
                ctx.checkpoint()
                await self._entry(run, *item)
                run.counters["done"] += 1
                if len(run.pending) >= FLUSH_EVERY:
                    await self._flush(run)
                    await ctx.report(**run.counters)

        tasks = [asyncio.create_task(produce()), *(asyncio.create_task(work()) for _ in range(workers))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def _flush(self, run: _Run) -> None:
        batch, run.pending = run.pending, []
        if batch:
            await self._db.run(repo.save_judgements, run.ev.id, batch)

    def _record(self, run: _Run, row: Judgement) -> None:
        run.pending.append(row)
        run.counters["judged" if row.status == "success" else "errors"] += 1

    async def _output(self, run: _Run, model: str, entry: StoredEntry) -> ModelOutput | str:
        """The model's output for the entry (generated now if need be), or why there is none."""
        async with run.gate:
            try:
                out = await self._outputs.generate(run.principal, model, entry)
            except TunepipeError as exc:
                return f"{model} could not answer: {exc.message}"
        run.counters["generated"] += 1
        return out

    async def _entry(self, run: _Run, entry: StoredEntry, stored: dict[str, ModelOutput]) -> None:
        wanted = _wanted(run, entry.id)
        if not wanted:
            return
        needed = list(dict.fromkeys(m for w in wanted for m in (w.model, w.opponent) if m))
        missing = [m for m in needed if m not in stored]
        run.counters["reused"] += len(needed) - len(missing)
        made = await asyncio.gather(*(self._output(run, m, entry) for m in missing))
        outputs: dict[str, ModelOutput | str] = {**stored, **dict(zip(missing, made, strict=True))}
        if run.ev.type is EvalType.CODE:
            for w in wanted:
                out = outputs[w.model]
                if isinstance(out, str):
                    self._record(run, Judgement(entry.id, w.model, status="error", error_message=out))
                else:
                    assert run.cases is not None
                    await run.cases.put((entry, w.model, out))
            return
        rows = await asyncio.gather(*(self._judge_one(run, entry, w, outputs) for w in wanted))
        for row in rows:
            self._record(run, row)

    async def _judge_one(
        self, run: _Run, entry: StoredEntry, want: Judgement, outputs: dict[str, ModelOutput | str]
    ) -> Judgement:
        mine = outputs[want.model]
        theirs = outputs.get(want.opponent) if want.opponent else None
        for out in (mine, theirs):
            if isinstance(out, str):
                return Judgement(*want.key, status="error", error_message=out)
        assert isinstance(mine, ModelOutput)
        if run.ev.type is EvalType.CRITERIA:
            criterion = next(c for c in run.criteria if c.ref == want.criterion)
            async with run.gate:
                judged = await self._judge.criterion(run.principal, criterion, _sample(entry, mine.output))
            r = judged.result
            if r.status != "success":
                return Judgement(*want.key, status="error", error_message=r.error_message, cost=judged.cost)
            return Judgement(*want.key, score=r.score, explanation=r.explanation, cost=judged.cost)
        assert isinstance(theirs, ModelOutput)
        return await self._compare(run, entry, want, mine, theirs)

    async def _compare(
        self, run: _Run, entry: StoredEntry, want: Judgement, mine: ModelOutput, theirs: ModelOutput
    ) -> Judgement:
        if same_output(mine.output, theirs.output):
            return Judgement(
                *want.key, score=0.5, explanation="Identical outputs", details={"identical": True}
            )
        ev = run.ev
        a_first = shown_first(ev.seed, entry.id, want.model, want.opponent)
        orders = [a_first, not a_first] if ev.both_orders else [a_first]
        scores, verdicts, explanation, cost = [], [], None, 0.0
        a_text, b_text = render_output(mine.output), render_output(theirs.output)
        for first in orders:
            shown = (a_text, b_text) if first else (b_text, a_text)
            async with run.gate:
                try:
                    choice, why, spent = await self._judge.compare(
                        run.principal, ev.judge_model or "", ev.instructions, _sample(entry, {}), *shown
                    )
                except JudgeFailed as exc:
                    return Judgement(
                        *want.key, status="error", error_message=exc.message, cost=cost + exc.cost
                    )
            cost += spent
            explanation = explanation or why
            verdicts.append(choice)
            scores.append(score_for_a(choice, first))
        details = {"a_first": a_first, "verdicts": verdicts, "scores": scores}
        return Judgement(
            *want.key, score=reconcile(scores), explanation=explanation, cost=cost, details=details
        )

    async def _grade(self, run: _Run) -> None:
        """Grade queued rows in batches, one grader process per batch."""
        assert run.cases is not None and run.ev.grader is not None
        source = run.ev.grader.get("source") or BUILTIN[run.ev.grader["builtin"]]
        ending = False
        while not ending:
            batch: list[tuple[StoredEntry, str, ModelOutput]] = []
            while len(batch) < GRADER_BATCH:
                item = await run.cases.get()
                if item is None:
                    ending = True
                    break
                batch.append(item)
            if not batch:
                continue
            grades = await run_grader(source, [_case(e, o) for e, _, o in batch], self._limits)
            for (entry, model, _), grade in zip(batch, grades, strict=True):
                if grade.error is not None:
                    self._record(run, Judgement(entry.id, model, status="error", error_message=grade.error))
                else:
                    self._record(run, Judgement(entry.id, model, score=grade.score))
