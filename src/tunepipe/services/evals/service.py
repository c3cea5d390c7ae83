"""Use cases over evaluations: create (validated whole, so a bad body is a 400 naming its field
before any work is queued), read with live results, list, rows, add models, delete.

An eval covers TEST entries of its dataset chosen when it is created (all of them, or a seeded
sample of ``num_entries``), so its numbers never shift as the dataset grows. Its status is its
latest ``evaluate`` job's; adding models queues another job, which judges only what is missing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from tunepipe.db import datasets as dataset_repo
from tunepipe.db import evals as repo
from tunepipe.db import jobs as job_repo
from tunepipe.db import model_outputs as output_repo
from tunepipe.db.database import Database
from tunepipe.db.model_outputs import ModelOutput
from tunepipe.domain.clock import now_ms
from tunepipe.domain.datasets import StoredEntry
from tunepipe.domain.evals import DATASET_MODEL, Eval, EvalType, Judgement, eval_status, summarise
from tunepipe.domain.ids import uuid7
from tunepipe.domain.jobs import Job, JobKind
from tunepipe.domain.model_ref import parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, NotFound, TunepipeError
from tunepipe.graders import BUILTIN, GraderInvalid, check_source
from tunepipe.protocol.evals import CreateEvalRequest, GraderSpec
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.gateway.criteria import resolve_ids
from tunepipe.services.gateway.routing import Router
from tunepipe.services.jobs import queue


@dataclass(frozen=True, slots=True)
class EvalState:
    eval: Eval
    job: Job | None
    entries: int
    results: dict[str, Any]

    @property
    def status(self) -> str:
        return eval_status(self.job.status if self.job else None)


@dataclass(frozen=True, slots=True)
class EvalRow:
    entry: StoredEntry
    outputs: dict[str, ModelOutput]
    judgements: list[Judgement]


def eval_in(conn: Connection, principal: Principal, eval_id: str) -> Eval:
    ev = repo.get(conn, principal.project.id, eval_id)
    if ev is None:
        raise NotFound(f"No eval {eval_id!r} in this project")
    return ev


def grader_of(spec: str | GraderSpec | None) -> dict[str, Any]:
    """``{"builtin": name}`` or ``{"source": python}``; a 400 naming ``grader`` otherwise."""
    if isinstance(spec, str):
        spec = GraderSpec(builtin=spec) if spec in BUILTIN else GraderSpec(source=spec)
    if spec is None or (spec.builtin is None) == (spec.source is None):
        raise InvalidRequest(
            f"A code eval needs `grader`: one of {', '.join(BUILTIN)}, or Python source defining grader(...)",
            param="grader",
        )
    if spec.builtin is not None:
        if spec.builtin not in BUILTIN:
            raise InvalidRequest(
                f"No built-in grader {spec.builtin!r}; choose from {', '.join(BUILTIN)}", param="grader"
            )
        return {"builtin": spec.builtin}
    assert spec.source is not None
    try:
        check_source(spec.source)
    except GraderInvalid as exc:
        raise InvalidRequest(f"`grader`: {exc}", param="grader") from exc
    return {"source": spec.source}


def results_of(conn: Connection, ev: Eval) -> dict[str, Any]:
    """The eval's results as they stand, its judgements streamed through the summary."""
    costs = output_repo.eval_costs(conn, ev.id, ev.models)
    results = summarise(ev.type, ev.models, repo.iter_judgements(conn, ev.id), costs)
    results["cost_usd"] = round(sum(costs.values()) + results["judge_cost_usd"], 8)
    return results


def _choose(ids: list[str], count: int | None, seed: int) -> list[str]:
    if count is None or count >= len(ids):
        return ids
    return sorted(random.Random(seed).sample(ids, count))


class EvalService:
    def __init__(
        self, db: Database, router: Router, *, max_attempts: int, feed: ChangeFeed | None = None
    ) -> None:
        self._db = db
        self._router = router
        self._max_attempts = max_attempts
        self._feed = feed

    async def _check_models(self, principal: Principal, models: list[str], field: str) -> None:
        if len(set(models)) != len(models):
            raise InvalidRequest(f"`{field}` lists a model twice", param=field)
        for i, model in enumerate(models):
            if model == DATASET_MODEL:
                continue
            try:
                await self._router.resolve(principal, parse_model(model))
            except TunepipeError as exc:
                raise InvalidRequest(f"`{field}[{i}]`: {exc.message}", param=f"{field}[{i}]") from exc

    async def _check_type(self, principal: Principal, body: CreateEvalRequest) -> dict[str, Any]:
        """The fields that depend on the type, checked: judge, criteria, grader."""
        kind = EvalType(body.type)
        out: dict[str, Any] = {"judge_model": None, "instructions": None, "criteria": (), "grader": None}
        if kind is EvalType.HEAD_TO_HEAD:
            if len(body.models) < 2:
                raise InvalidRequest("A head-to-head eval compares at least two models", param="models")
            if not body.judge_model:
                raise InvalidRequest("A head-to-head eval needs `judge_model`", param="judge_model")
            try:
                await self._router.resolve(principal, parse_model(body.judge_model))
            except TunepipeError as exc:
                raise InvalidRequest(f"`judge_model`: {exc.message}", param="judge_model") from exc
            out.update(judge_model=body.judge_model, instructions=body.instructions)
        elif kind is EvalType.CRITERIA:
            if not body.criteria:
                raise InvalidRequest("A criteria eval needs `criteria`", param="criteria")
            refs: list[str] = []
            for i, cid in enumerate(body.criteria):
                try:
                    refs.extend(c.ref for c in await self._db.run(resolve_ids, principal.project.id, [cid]))
                except TunepipeError as exc:
                    raise InvalidRequest(f"`criteria[{i}]`: {exc.message}", param=f"criteria[{i}]") from exc
            out["criteria"] = tuple(dict.fromkeys(refs))
        else:
            out["grader"] = grader_of(body.grader)
        return out

    async def create(self, principal: Principal, body: CreateEvalRequest) -> tuple[Eval, Job]:
        await self._check_models(principal, body.models, "models")
        typed = await self._check_type(principal, body)
        now = now_ms()

        def create(conn: Connection) -> tuple[Eval, Job]:
            ds = dataset_repo.get_dataset(conn, principal.project.id, body.dataset_id)
            if ds is None:
                raise InvalidRequest(
                    f"`dataset_id`: no dataset {body.dataset_id!r} in this project", param="dataset_id"
                )
            ids: list[str] = []
            while page := dataset_repo.entry_id_page(
                conn, ds.project_id, ds.id, "TEST", ids[-1] if ids else "", 1000
            ):
                ids.extend(page)
            if not ids:
                raise InvalidRequest(
                    f"Dataset {ds.name!r} has no TEST entries to evaluate on", param="dataset_id"
                )
            ev = Eval(
                id=uuid7(),
                project_id=principal.project.id,
                dataset_id=ds.id,
                name=body.name,
                type=EvalType(body.type),
                models=tuple(body.models),
                num_entries=body.num_entries,
                both_orders=body.both_orders,
                seed=body.seed,
                created_at=now,
                updated_at=now,
                **typed,
            )
            repo.create(conn, ev, _choose(ids, body.num_entries, body.seed))
            return ev, self._enqueue(conn, ev)

        ev, job = await self._db.run(create)
        self._announce(job)
        return ev, job

    def _enqueue(self, conn: Connection, ev: Eval) -> Job:
        return queue.enqueue(
            conn,
            JobKind.EVALUATE,
            ev.project_id,
            ev.id,
            params={"models": list(ev.models)},
            max_attempts=self._max_attempts,
        )

    def _announce(self, job: Job) -> None:
        if self._feed is not None:
            self._feed.changed(queue.SCOPE, job.kind)

    async def add_models(self, principal: Principal, eval_id: str, models: list[str]) -> tuple[Eval, Job]:
        """Add models and queue a job that generates and judges only what is missing."""
        ev = await self._db.run(eval_in, principal, eval_id)
        await self._check_models(principal, [*ev.models, *models], "models")

        def add(conn: Connection) -> tuple[Eval, Job]:
            current = eval_in(conn, principal, eval_id)
            queue.cancel_for_subject(conn, current.id)
            merged = (*current.models, *(m for m in models if m not in current.models))
            repo.set_models(conn, current.id, merged)
            updated = eval_in(conn, principal, eval_id)
            return updated, self._enqueue(conn, updated)

        ev, job = await self._db.run(add)
        self._announce(job)
        return ev, job

    async def get(self, principal: Principal, eval_id: str) -> EvalState:
        def load(conn: Connection) -> EvalState:
            ev = eval_in(conn, principal, eval_id)
            job = job_repo.latest_for(conn, [ev.id], JobKind.EVALUATE).get(ev.id)
            return EvalState(ev, job, repo.count_entries(conn, ev.id), results_of(conn, ev))

        return await self._db.run(load)

    async def all(self, principal: Principal, dataset_id: str | None = None) -> list[tuple[Eval, Job | None]]:
        def load(conn: Connection) -> list[tuple[Eval, Job | None]]:
            found = repo.list_evals(conn, principal.project.id, dataset_id)
            jobs = job_repo.latest_for(conn, [e.id for e in found], JobKind.EVALUATE)
            return [(e, jobs.get(e.id)) for e in found]

        return await self._db.run(load)

    async def rows(
        self, principal: Principal, eval_id: str, *, offset: int, limit: int
    ) -> tuple[list[EvalRow], int]:
        """A page of the eval's entries, each with every model's output and its judgements."""

        def load(conn: Connection) -> tuple[list[EvalRow], int]:
            ev = eval_in(conn, principal, eval_id)
            ids = repo.entry_ids(conn, ev.id)
            page = ids[offset : offset + limit]
            entries = dataset_repo.entries_by_id(conn, ev.project_id, ev.dataset_id, page)
            keys = [(e.id, e.input_hash) for e in entries.values()]
            outputs = {
                m: output_repo.find(conn, ev.project_id, m, keys) for m in ev.models if m != DATASET_MODEL
            }
            judged: dict[str, list[Judgement]] = {}
            for j in repo.judgements(conn, ev.id, page):
                judged.setdefault(j.entry_id, []).append(j)
            rows = []
            for entry_id in page:
                entry = entries.get(entry_id)
                if entry is None:
                    continue
                mine = {m: found[entry_id] for m, found in outputs.items() if entry_id in found}
                rows.append(EvalRow(entry, mine, judged.get(entry_id, [])))
            return rows, len(ids)

        return await self._db.run(load)

    async def delete(self, principal: Principal, eval_id: str) -> None:
        def delete(conn: Connection) -> None:
            ev = eval_in(conn, principal, eval_id)
            queue.cancel_for_subject(conn, ev.id)
            repo.delete_eval(conn, principal.project.id, ev.id)

        await self._db.run(delete)
