"""The evaluations API on the wire (tunepipe's: OpenPipe had evaluations only in its UI): the
create body, and how an eval, its results and its rows are shown."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.datasets import StoredEntry
from tunepipe.domain.evals import Eval, Judgement, eval_status
from tunepipe.domain.jobs import Job
from tunepipe.protocol.logs import iso
from tunepipe.protocol.types import Id, Text

MAX_MODELS = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GraderSpec(_Strict):
    builtin: Text | None = None
    source: Text | None = Field(None, max_length=200_000)


class CreateEvalRequest(_Strict):
    name: Text = Field(min_length=1, max_length=200)
    dataset_id: Id
    type: Literal["head_to_head", "criteria", "code"]
    models: list[Text] = Field(min_length=1, max_length=MAX_MODELS)
    judge_model: Text | None = Field(None, max_length=300)
    instructions: Text | None = Field(None, max_length=100_000)
    criteria: list[Text] | None = Field(None, max_length=20)
    grader: Text | GraderSpec | None = Field(
        None, description="A built-in grader's name, Python source defining grader(...), or {builtin|source}"
    )
    num_entries: int | None = Field(None, ge=1, le=100_000)
    both_orders: bool = Field(False, description="Head-to-head: judge each pair in both orders")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class AddModelsRequest(_Strict):
    models: list[Text] = Field(min_length=1, max_length=MAX_MODELS)


def eval_view(
    ev: Eval, status: str, progress: dict[str, Any], results: dict[str, Any] | None, entries: int
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "object": "eval",
        "id": ev.id,
        "name": ev.name,
        "type": ev.type.value,
        "dataset_id": ev.dataset_id,
        "models": list(ev.models),
        "status": status,
        "progress": progress,
        "num_entries": entries,
        "created": iso(ev.created_at),
        "updated": iso(ev.updated_at),
    }
    if ev.judge_model is not None:
        out["judge_model"] = ev.judge_model
        out["instructions"] = ev.instructions
        out["both_orders"] = ev.both_orders
        out["seed"] = ev.seed
    if ev.criteria:
        out["criteria"] = list(ev.criteria)
    if ev.grader is not None:
        out["grader"] = ev.grader.get("builtin") or "custom"
    if results is not None:
        out["results"] = results
    return out


def eval_state_view(ev: Eval, job: Job | None, entries: int, results: dict[str, Any]) -> dict[str, Any]:
    """An eval with its job's progress (and error) and its results so far."""
    progress = dict(job.progress) if job else {}
    if job is not None and job.error_message:
        progress["error_message"] = job.error_message
    return eval_view(ev, eval_status(job.status if job else None), progress, results, entries)


def eval_list_view(ev: Eval, job: Job | None) -> dict[str, Any]:
    """An eval as lists show it: status and progress, no results."""
    return eval_view(ev, eval_status(job.status if job else None), dict(job.progress) if job else {}, None, 0)


def eval_row_view(entry: StoredEntry, outputs: dict[str, Any], judgements: list[Judgement]) -> dict[str, Any]:
    """One TEST entry of an eval: its input, the dataset's output, each model's output (``outputs``
    maps a model to its output message) and every verdict on them."""
    data = entry.data
    return {
        "entry_id": entry.id,
        "input": {"messages": data.messages, "tools": data.tools, "tool_choice": data.tool_choice},
        "dataset_output": data.output,
        "outputs": outputs,
        "judgements": [
            {
                "model": j.model,
                "opponent": j.opponent or None,
                "criterion": j.criterion or None,
                "status": j.status,
                "score": j.score,
                "explanation": j.explanation,
                "error_message": j.error_message,
                "cost_usd": j.cost,
                **({"details": j.details} if j.details else {}),
            }
            for j in judgements
        ],
    }
