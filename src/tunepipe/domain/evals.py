"""Evaluations (spec B.5): what an eval is, the head-to-head judge's prompt and verdicts, and how
rows of judgements become each model's score.

Three types, one shape of result: every judgement is a row scored from one model's side in
[0, 1]. *Head-to-head* compares every pair of models on every entry (a win is 1, a tie 0.5, a
loss 0; identical outputs tie without a judge), showing the two outputs in a seeded random order
that is recorded, and optionally a second time in the other order, a disagreement between the
two orders counting as a tie (position bias is the judge flaw most reported). *Criteria* scores
each output with criterion judges (the probability of a pass), *code* with a grader function.
A model's score is the mean of its rows that did not err.

Pure values and rules: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from tunepipe.domain.criteria import (
    Sample,
    VerdictUnparseable,
    first_json_object,
    message_of,
    render_output,
)
from tunepipe.domain.jobs import JobStatus

DATASET_MODEL = "dataset"
"""The pseudo-model whose output for an entry is the dataset's own."""


class EvalType(StrEnum):
    HEAD_TO_HEAD = "head_to_head"
    CRITERIA = "criteria"
    CODE = "code"


def eval_status(job_status: JobStatus | None) -> str:
    """An eval's status is its job's, in OpenPipe's words (no copy is kept to drift)."""
    if job_status is None:
        return "QUEUED"
    return {JobStatus.DONE: "COMPLETE"}.get(job_status, job_status.value)


@dataclass(frozen=True, slots=True)
class Eval:
    id: str
    project_id: str
    dataset_id: str
    name: str
    type: EvalType
    models: tuple[str, ...]
    judge_model: str | None
    instructions: str | None
    criteria: tuple[str, ...]  # pinned criterion versions, ``name@vN``
    grader: dict[str, Any] | None  # {"builtin": name} or {"source": python}
    num_entries: int | None
    both_orders: bool
    seed: int
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Judgement:
    """One row of an eval: ``model``'s score on ``entry_id`` against ``opponent`` (head-to-head)
    or by ``criterion`` (criteria) or by the grader (code)."""

    entry_id: str
    model: str
    opponent: str = ""
    criterion: str = ""
    score: float | None = None
    status: str = "success"  # success | error
    explanation: str | None = None
    error_message: str | None = None
    cost: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.entry_id, self.model, self.opponent, self.criterion)


# ---------------------------------------------------------------- head-to-head


H2H_TOOL_NAME = "record_score"
H2H_CHOICES = ("response 1", "response 2", "tie")
H2H_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "explanation": {"type": "string", "description": "Compare the two responses before deciding."},
        "judgement": {"type": "string", "enum": list(H2H_CHOICES)},
    },
    "required": ["explanation", "judgement"],
    "additionalProperties": False,
}

DEFAULT_H2H_INSTRUCTIONS = (
    "Decide which response better answers the conversation's last message: correct, complete, "
    "following every instruction in the conversation, in the format asked for. If they are "
    "equally good or equally bad, answer tie."
)

H2H_SYSTEM = (
    "You compare two responses a language model could give to the same input. Explain your "
    'comparison first, then choose "response 1", "response 2" or "tie". The order the responses '
    "are shown in says nothing about their quality."
)


def h2h_messages(
    instructions: str | None, sample_input: Sample, first: str, second: str
) -> list[dict[str, Any]]:
    parts = [f"<instructions>\n{instructions or DEFAULT_H2H_INSTRUCTIONS}\n</instructions>"]
    parts.append("<messages>\n" + orjson.dumps(sample_input.messages, option=orjson.OPT_INDENT_2).decode())
    parts[-1] += "\n</messages>"
    if sample_input.tools:
        parts.append("<tools>\n" + orjson.dumps(sample_input.tools).decode() + "\n</tools>")
    parts.append(f"<response_1>\n{first}\n</response_1>")
    parts.append(f"<response_2>\n{second}\n</response_2>")
    return [{"role": "system", "content": H2H_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


_H2H_WORDS = {
    "response 1": "1",
    "response_1": "1",
    "1": "1",
    "first": "1",
    "a": "1",
    "response 2": "2",
    "response_2": "2",
    "2": "2",
    "second": "2",
    "b": "2",
    "tie": "tie",
    "draw": "tie",
    "equal": "tie",
}
_H2H_FREE = re.compile(r"\b(response[ _][12]|tie)\b", re.IGNORECASE)


def parse_h2h(completion: Mapping[str, Any]) -> tuple[str, str | None]:
    """``("1" | "2" | "tie", explanation)`` from the judge's answer (tool call, JSON or text)."""
    message = message_of(completion)
    candidates: list[Any] = []
    for call in message.get("tool_calls") or []:
        args = ((call or {}).get("function") or {}).get("arguments")
        candidates.append(first_json_object(args) if isinstance(args, str) else args)
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    if text:
        candidates.append(first_json_object(text))
    for obj in candidates:
        if isinstance(obj, dict):
            raw = obj.get("judgement", obj.get("judgment", obj.get("winner")))
            choice = _H2H_WORDS.get(str(raw).strip().lower()) if raw is not None else None
            if choice is not None:
                explanation = obj.get("explanation")
                return choice, str(explanation) if explanation is not None else None
    found = _H2H_FREE.findall(text)
    if found:
        return _H2H_WORDS[found[-1].lower().replace("_", " ")], text.strip()
    raise VerdictUnparseable(f"The judge's answer names no winner: {(text or str(message))[:200]!r}")


def shown_first(seed: int, entry_id: str, model_a: str, model_b: str) -> bool:
    """Whether ``model_a``'s output is shown as response 1: seeded, so a rerun shows the same."""
    digest = hashlib.sha256(f"{seed}\x00{entry_id}\x00{model_a}\x00{model_b}".encode()).digest()
    return digest[0] % 2 == 0


def score_for_a(choice: str, a_first: bool) -> float:
    """Model A's score from a verdict on the responses as shown."""
    if choice == "tie":
        return 0.5
    return 1.0 if (choice == "1") == a_first else 0.0


def reconcile(scores: Sequence[float]) -> float:
    """Both orders judged: agreement stands, disagreement is a tie."""
    return scores[0] if all(s == scores[0] for s in scores) else 0.5


def same_output(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    return render_output(a).strip() == render_output(b).strip()


def pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]


# ---------------------------------------------------------------- results


@dataclass(slots=True)
class _Tally:
    total: float = 0.0
    count: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    errors: int = 0

    def add(self, score: float) -> None:
        self.total += score
        self.count += 1
        if score == 1:
            self.wins += 1
        elif score == 0:
            self.losses += 1
        else:
            self.ties += 1


def summarise(
    eval_type: EvalType,
    models: Sequence[str],
    judgements: Iterable[Judgement],
    output_costs: Mapping[str, float],
) -> dict[str, Any]:
    """``{models: [{model, score, …, cost_usd}], matrix?, judge_cost_usd}``, best model first.

    ``output_costs``: what each model's outputs on the eval's entries cost to generate."""
    tallies = {m: _Tally() for m in models}
    matrix = {a: {b: _Tally() for b in models if b != a} for a in models}
    judge_cost = 0.0
    for j in judgements:
        judge_cost += j.cost
        if j.model not in tallies:
            continue
        if j.status != "success" or j.score is None:
            tallies[j.model].errors += 1
            if j.opponent in tallies:
                tallies[j.opponent].errors += 1
            continue
        tallies[j.model].add(j.score)
        if eval_type is EvalType.HEAD_TO_HEAD and j.opponent in tallies:
            tallies[j.opponent].add(1 - j.score)
            matrix[j.model][j.opponent].add(j.score)
            matrix[j.opponent][j.model].add(1 - j.score)
    rows = []
    for m in models:
        t = tallies[m]
        row: dict[str, Any] = {
            "model": m,
            "score": t.total / t.count if t.count else None,
            "judged": t.count,
            "errors": t.errors,
            "cost_usd": round(output_costs.get(m, 0.0), 8),
        }
        if eval_type is EvalType.HEAD_TO_HEAD:
            row.update(wins=t.wins, ties=t.ties, losses=t.losses)
        rows.append(row)
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))  # unscored last
    out: dict[str, Any] = {"models": rows, "judge_cost_usd": round(judge_cost, 8)}
    if eval_type is EvalType.HEAD_TO_HEAD:
        out["matrix"] = {
            a: {b: (t.total / t.count if t.count else None) for b, t in row_.items()}
            for a, row_ in matrix.items()
        }
    return out
