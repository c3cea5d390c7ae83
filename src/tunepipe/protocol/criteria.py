"""The criteria API on the wire: OpenPipe's ``/criteria/judge`` (SDK ``get_criterion_judgement``),
tunepipe's criteria CRUD and alignment sets (OpenPipe had these only in its UI), and how
criteria, alignment rows and agreement statistics are shown."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.alignment import AlignmentRow, AlignmentStats, RowJudgement
from tunepipe.domain.criteria import Criterion
from tunepipe.protocol.logs import iso
from tunepipe.protocol.types import Id, Text

MAX_ROWS_PER_CALL = 1000
MAX_SAMPLE = 1000


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateCriterionRequest(_Strict):
    name: Text = Field(min_length=1, max_length=100)
    instructions: Text = Field(min_length=1, max_length=100_000)
    judge_model: Text = Field(min_length=1, max_length=300)
    description: Text | None = Field(None, max_length=10_000)
    variables: list[Text] | None = Field(
        None, description="Optional templated variables shown to the judge: messages, tools, tool_choice"
    )


class JudgeInput(_Body):
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


class JudgeRequest(_Body):
    criterion_id: Id = Field(min_length=1)
    input: JudgeInput
    output: dict[str, Any]


class AddRowsRequest(_Strict):
    """Rows in the fine-tuning format (the last message is the output) or with ``output``, each
    with an optional ``judgement`` (PASS | FAIL); validated one by one."""

    rows: list[Any] = Field(min_length=1, max_length=MAX_ROWS_PER_CALL)


class SampleRowsRequest(_Strict):
    dataset_id: Id
    count: int = Field(ge=1, le=MAX_SAMPLE)
    split: Literal["TRAIN", "TEST"] | None = None
    output_source: Text = Field(
        "dataset", description='"dataset" (the entries\' own outputs) or a model that generates them'
    )
    seed: int = 0


class LabelRowRequest(_Strict):
    judgement: Literal["PASS", "FAIL"] | None


class RunAlignmentRequest(_Strict):
    rerun: bool = Field(False, description="Judge rows this version has already judged again")


def criterion_view(c: Criterion) -> dict[str, Any]:
    return {
        "object": "criterion",
        "id": c.ref,
        "name": c.name,
        "version": c.version,
        "description": c.description,
        "instructions": c.instructions,
        "judge_model": c.judge_model,
        "variables": ["output", *c.variables],
        "created": iso(c.created_at),
    }


def row_view(row: AlignmentRow, judged: RowJudgement | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "object": "criterion.alignment_row",
        "id": row.id,
        "messages": row.messages,
        "tools": row.tools,
        "tool_choice": row.tool_choice,
        "output": row.output,
        "judgement": row.judgement,
        "source": row.source,
        "dataset_entry_id": row.dataset_entry_id,
        "created": iso(row.created_at),
    }
    if judged is not None:
        out["judge"] = {
            "score": judged.score,
            "explanation": judged.explanation,
            "error_message": judged.error_message,
        }
    return out


def stats_view(c: Criterion, stats: AlignmentStats, cost: float) -> dict[str, Any]:
    return {
        "criterion": c.ref,
        "version": c.version,
        "judge_model": c.judge_model,
        **stats.as_dict(),
        "cost_usd": round(cost, 8),
    }
