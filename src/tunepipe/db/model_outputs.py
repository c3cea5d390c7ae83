"""Model outputs on dataset entries, shared by every eval and alignment set of a project.

An output is keyed by the entry, the model and the entry's input hash: the same question asked
of the same model is answered once, and an entry whose input was edited is answered anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, func, insert, or_, select, tuple_

from tunepipe.db.schema import dataset_entries, eval_entries, model_outputs
from tunepipe.domain.clock import now_ms


@dataclass(frozen=True, slots=True)
class ModelOutput:
    entry_id: str
    model: str
    input_hash: str
    output: dict[str, Any]
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float


def find(
    conn: Connection, project_id: str, model: str, keys: Sequence[tuple[str, str]]
) -> dict[str, ModelOutput]:
    """Stored outputs of ``model`` for ``(entry_id, input_hash)`` keys, by entry id."""
    if not keys:
        return {}
    o = model_outputs.c
    out: dict[str, ModelOutput] = {}
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        rows = conn.execute(
            select(model_outputs).where(
                o.project_id == project_id,
                o.model == model,
                or_(*(and_(o.entry_id == e, o.input_hash == h) for e, h in part)),
            )
        ).all()
        for r in rows:
            out[r.entry_id] = ModelOutput(
                entry_id=r.entry_id,
                model=r.model,
                input_hash=r.input_hash,
                output=orjson.loads(r.output),
                finish_reason=r.finish_reason,
                prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens,
                cost=r.cost,
            )
    return out


def save(conn: Connection, project_id: str, outputs: Sequence[ModelOutput]) -> None:
    """Store outputs (an output stored meanwhile by another job is replaced: same question)."""
    if not outputs:
        return
    o = model_outputs.c
    conn.execute(
        delete(model_outputs).where(
            tuple_(o.entry_id, o.model, o.input_hash).in_(
                [(x.entry_id, x.model, x.input_hash) for x in outputs]
            )
        )
    )
    now = now_ms()
    conn.execute(
        insert(model_outputs),
        [
            {
                "entry_id": x.entry_id,
                "model": x.model,
                "input_hash": x.input_hash,
                "project_id": project_id,
                "output": orjson.dumps(x.output).decode(),
                "finish_reason": x.finish_reason,
                "prompt_tokens": x.prompt_tokens,
                "completion_tokens": x.completion_tokens,
                "cost": x.cost,
                "created_at": now,
            }
            for x in outputs
        ],
    )


def eval_costs(conn: Connection, eval_id: str, models: Sequence[str]) -> dict[str, float]:
    """What each model's outputs on an eval's entries (as they are now) cost to generate."""
    o, e, d = model_outputs.c, eval_entries.c, dataset_entries.c
    rows = conn.execute(
        select(o.model, func.sum(o.cost))
        .join(eval_entries, e.entry_id == o.entry_id)
        .join(dataset_entries, and_(d.id == o.entry_id, d.input_hash == o.input_hash))
        .where(e.eval_id == eval_id, o.model.in_(list(models)))
        .group_by(o.model)
    ).all()
    return {model: float(total or 0.0) for model, total in rows}
