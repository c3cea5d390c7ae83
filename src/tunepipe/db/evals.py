"""Evaluations, the entries each covers, and their judgements, every query scoped by project."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, tuple_, update

from tunepipe.db.schema import eval_entries, eval_judgements, evals
from tunepipe.domain.clock import now_ms
from tunepipe.domain.evals import Eval, EvalType, Judgement


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _eval(row: Any) -> Eval:
    return Eval(
        id=row.id,
        project_id=row.project_id,
        dataset_id=row.dataset_id,
        name=row.name,
        type=EvalType(row.type),
        models=tuple(orjson.loads(row.models)),
        judge_model=row.judge_model,
        instructions=row.instructions,
        criteria=tuple(orjson.loads(row.criteria)),
        grader=orjson.loads(row.grader) if row.grader is not None else None,
        num_entries=row.num_entries,
        both_orders=row.both_orders,
        seed=row.seed,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(conn: Connection, ev: Eval, entry_ids: Sequence[str]) -> None:
    values = {f: getattr(ev, f) for f in Eval.__dataclass_fields__}
    values.update(
        type=ev.type.value,
        models=_dumps(list(ev.models)),
        criteria=_dumps(list(ev.criteria)),
        grader=_dumps(ev.grader),
    )
    conn.execute(insert(evals).values(**values))
    if entry_ids:
        conn.execute(
            insert(eval_entries),
            [{"eval_id": ev.id, "entry_id": e, "position": i} for i, e in enumerate(entry_ids)],
        )


def get(conn: Connection, project_id: str, eval_id: str) -> Eval | None:
    c = evals.c
    row = conn.execute(select(evals).where(c.project_id == project_id, c.id == eval_id)).first()
    return _eval(row) if row is not None else None


def list_evals(conn: Connection, project_id: str, dataset_id: str | None = None) -> list[Eval]:
    c = evals.c
    query = select(evals).where(c.project_id == project_id)
    if dataset_id is not None:
        query = query.where(c.dataset_id == dataset_id)
    return [_eval(r) for r in conn.execute(query.order_by(c.created_at.desc(), c.id.desc())).all()]


def set_models(conn: Connection, eval_id: str, models: Sequence[str]) -> None:
    conn.execute(
        update(evals).where(evals.c.id == eval_id).values(models=_dumps(list(models)), updated_at=now_ms())
    )


def delete_eval(conn: Connection, project_id: str, eval_id: str) -> bool:
    c = evals.c
    return bool(conn.execute(delete(evals).where(c.project_id == project_id, c.id == eval_id)).rowcount)


def count_entries(conn: Connection, eval_id: str) -> int:
    e = eval_entries.c
    return int(conn.execute(select(func.count()).where(e.eval_id == eval_id)).scalar_one())


def entry_ids(conn: Connection, eval_id: str) -> list[str]:
    e = eval_entries.c
    return [
        r.entry_id for r in conn.execute(select(e.entry_id).where(e.eval_id == eval_id).order_by(e.position))
    ]


def _judgement(row: Any) -> Judgement:
    return Judgement(
        entry_id=row.entry_id,
        model=row.model,
        opponent=row.opponent,
        criterion=row.criterion,
        score=row.score,
        status=row.status,
        explanation=row.explanation,
        error_message=row.error_message,
        cost=row.cost,
        details=orjson.loads(row.details) if row.details else {},
    )


def done_keys(conn: Connection, eval_id: str) -> set[tuple[str, str, str, str]]:
    """Keys of the judgements already made successfully (a rerun skips them)."""
    j = eval_judgements.c
    rows = conn.execute(
        select(j.entry_id, j.model, j.opponent, j.criterion).where(
            j.eval_id == eval_id, j.status == "success"
        )
    )
    return {(r.entry_id, r.model, r.opponent, r.criterion) for r in rows}


def iter_judgements(conn: Connection, eval_id: str) -> Iterator[Judgement]:
    """Every judgement of the eval, streamed (memory stays flat however large the eval)."""
    j = eval_judgements.c
    result = conn.execution_options(yield_per=500).execute(
        select(eval_judgements).where(j.eval_id == eval_id)
    )
    for row in result:
        yield _judgement(row)


def judgements(conn: Connection, eval_id: str, entry_ids: Sequence[str] | None = None) -> list[Judgement]:
    j = eval_judgements.c
    query = select(eval_judgements).where(j.eval_id == eval_id)
    if entry_ids is not None:
        query = query.where(j.entry_id.in_(list(entry_ids)))
    return [_judgement(r) for r in conn.execute(query.order_by(j.entry_id, j.model, j.opponent, j.criterion))]


def save_judgements(conn: Connection, eval_id: str, rows: Sequence[Judgement]) -> None:
    """Store judgements, replacing earlier ones with the same key (a rerun of an erred row)."""
    if not rows:
        return
    j = eval_judgements.c
    conn.execute(
        delete(eval_judgements).where(
            j.eval_id == eval_id,
            tuple_(j.entry_id, j.model, j.opponent, j.criterion).in_([r.key for r in rows]),
        )
    )
    now = now_ms()
    conn.execute(
        insert(eval_judgements),
        [
            {
                "eval_id": eval_id,
                "entry_id": r.entry_id,
                "model": r.model,
                "opponent": r.opponent,
                "criterion": r.criterion,
                "status": r.status,
                "score": r.score,
                "explanation": r.explanation,
                "error_message": r.error_message,
                "cost": r.cost,
                "details": _dumps(r.details) if r.details else None,
                "created_at": now,
            }
            for r in rows
        ],
    )
