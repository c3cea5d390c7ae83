"""How well a criterion's judge agrees with humans on its alignment set (spec B.6).

Each labelled row pairs a human judgement (PASS or FAIL) with the judge's score; a score of at
least :data:`~tunepipe.domain.criteria.PASS_THRESHOLD` is the judge saying PASS. As OpenPipe
did, FAIL is the positive class: a criterion exists to catch bad outputs, so precision is "of
the outputs the judge failed, how many a human failed too" and recall "of the outputs a human
failed, how many the judge caught". Cohen's kappa corrects raw agreement for what two raters
with these pass rates would agree on by chance. Rows without a human label, or where the judge
erred, count in ``unlabelled`` and ``errors`` and in no statistic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from tunepipe.domain.criteria import PASS_THRESHOLD
from tunepipe.domain.dataset_entries import EntryInvalid, parse_entry

JUDGEMENTS = ("PASS", "FAIL")


@dataclass(frozen=True, slots=True)
class AlignmentStats:
    rows: int
    compared: int
    unlabelled: int
    errors: int
    true_fail: int  # human FAIL, judge FAIL
    false_fail: int  # human PASS, judge FAIL
    missed_fail: int  # human FAIL, judge PASS
    true_pass: int  # human PASS, judge PASS
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    kappa: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def judge_says(score: float) -> str:
    return "PASS" if score >= PASS_THRESHOLD else "FAIL"


def alignment_stats(pairs: Iterable[tuple[str | None, float | None]]) -> AlignmentStats:
    """``pairs``: (the human judgement or None, the judge's score or None when it failed)."""
    rows = unlabelled = errors = 0
    counts = {("FAIL", "FAIL"): 0, ("PASS", "FAIL"): 0, ("FAIL", "PASS"): 0, ("PASS", "PASS"): 0}
    for human, score in pairs:
        rows += 1
        if human not in JUDGEMENTS:
            unlabelled += 1
        elif score is None:
            errors += 1
        else:
            counts[(human, judge_says(score))] += 1
    tp, fp = counts[("FAIL", "FAIL")], counts[("PASS", "FAIL")]
    fn, tn = counts[("FAIL", "PASS")], counts[("PASS", "PASS")]
    n = tp + fp + fn + tn
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    accuracy = _ratio(tp + tn, n)
    kappa = None
    if n:
        human_fail, judge_fail = (tp + fn) / n, (tp + fp) / n
        chance = human_fail * judge_fail + (1 - human_fail) * (1 - judge_fail)
        assert accuracy is not None
        kappa = (accuracy - chance) / (1 - chance) if chance < 1 else (1.0 if accuracy == 1 else None)
    return AlignmentStats(
        rows=rows,
        compared=n,
        unlabelled=unlabelled,
        errors=errors,
        true_fail=tp,
        false_fail=fp,
        missed_fail=fn,
        true_pass=tn,
        accuracy=accuracy,
        precision=precision,
        recall=recall,
        f1=f1,
        kappa=kappa,
    )


@dataclass(frozen=True, slots=True)
class AlignmentRow:
    """One row of a criterion's alignment set: an input, an output, and a human's judgement."""

    id: str
    criterion_name: str
    messages: list[dict[str, Any]]
    output: dict[str, Any]
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    judgement: str | None  # PASS | FAIL | None (not labelled yet)
    source: str  # upload | dataset | model
    dataset_entry_id: str | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class RowJudgement:
    """What one criterion version's judge said about one alignment row."""

    row_id: str
    criterion_id: str
    score: float | None
    explanation: str | None
    error_message: str | None
    cost: float


MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""An alignment-set upload is at most 10 MB (as OpenPipe's was)."""


def parse_row(raw: Any) -> dict[str, Any]:
    """One alignment row from an API body or a JSONL line: the fine-tuning format (the last
    message is the output) or ``messages`` plus ``output``, with an optional ``judgement``.

    Raises:
        EntryInvalid: the first rule the row breaks.
    """
    if not isinstance(raw, dict):
        raise EntryInvalid("a row must be a JSON object")
    judgement = raw.get("judgement", raw.get("judgment"))
    if judgement is not None:
        if not isinstance(judgement, str) or judgement.upper() not in JUDGEMENTS:
            raise EntryInvalid("`judgement` must be PASS, FAIL or null")
        judgement = judgement.upper()
    entry = dict(raw)
    entry.pop("judgement", None)
    entry.pop("judgment", None)
    output = entry.pop("output", None)
    if output is not None:
        if not isinstance(entry.get("messages"), list):
            raise EntryInvalid("`messages` must be an array")
        entry["messages"] = [*entry["messages"], output]
    data = parse_entry(entry)
    return {
        "messages": data.messages,
        "output": data.output,
        "tools": data.tools,
        "tool_choice": data.tool_choice,
        "judgement": judgement,
    }
