"""Evaluation rules without I/O: reading a head-to-head verdict, the seeded order, reconciling
both orders, and per-model scores, win counts and the pairwise matrix."""

from __future__ import annotations

from typing import Any

import pytest

from tunepipe.domain.criteria import VerdictUnparseable
from tunepipe.domain.evals import (
    EvalType,
    Judgement,
    pairs,
    parse_h2h,
    reconcile,
    same_output,
    score_for_a,
    shown_first,
    summarise,
)


def answer(content: str | None = None, arguments: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if arguments is not None:
        message["tool_calls"] = [{"function": {"name": "record_score", "arguments": arguments}}]
    return {"choices": [{"message": message}]}


def test_head_to_head_verdicts_are_read_from_tool_calls_json_or_text() -> None:
    assert parse_h2h(answer(arguments='{"explanation": "b is right", "judgement": "response 2"}')) == (
        "2",
        "b is right",
    )
    assert parse_h2h(answer('{"explanation": "same", "judgement": "tie"}')) == ("tie", "same")
    assert parse_h2h(answer("Response_1 is clearly better.")) == ("1", "Response_1 is clearly better.")
    with pytest.raises(VerdictUnparseable):
        parse_h2h(answer("Both have merits."))


def test_the_shown_order_is_seeded_and_both_orders_reconcile() -> None:
    orders = {shown_first(7, f"entry-{i}", "a", "b") for i in range(40)}
    assert orders == {True, False}
    assert shown_first(7, "entry-1", "a", "b") == shown_first(7, "entry-1", "a", "b")
    assert (
        score_for_a("1", True),
        score_for_a("1", False),
        score_for_a("2", False),
        score_for_a("tie", True),
    ) == (1.0, 0.0, 1.0, 0.5)
    assert (reconcile([1.0, 1.0]), reconcile([1.0, 0.0]), reconcile([0.0])) == (1.0, 0.5, 0.0)
    assert pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert same_output({"content": " x "}, {"content": "x"}) and not same_output(
        {"content": "x"}, {"content": "y"}
    )


def test_summary_gives_win_rates_counts_and_the_matrix() -> None:
    rows = [
        Judgement("e1", "a", opponent="b", score=1.0, cost=0.01),
        Judgement("e2", "a", opponent="b", score=0.5),
        Judgement("e1", "a", opponent="c", score=0.0),
        Judgement("e1", "b", opponent="c", score=1.0),
        Judgement("e2", "b", opponent="c", status="error", error_message="judge down", cost=0.02),
    ]
    out = summarise(EvalType.HEAD_TO_HEAD, ["a", "b", "c"], rows, {"a": 0.5})
    by = {m["model"]: m for m in out["models"]}
    assert by["a"] | {"score": 0} == {
        "model": "a",
        "score": 0,
        "judged": 3,
        "errors": 0,
        "cost_usd": 0.5,
        "wins": 1,
        "ties": 1,
        "losses": 1,
    }
    assert by["a"]["score"] == pytest.approx(0.5)
    assert (by["b"]["wins"], by["b"]["ties"], by["b"]["losses"], by["b"]["errors"]) == (1, 1, 1, 1)
    assert (by["c"]["score"], by["c"]["errors"]) == (pytest.approx(0.5), 1)
    assert out["matrix"]["a"] == {"b": 0.75, "c": 0.0} and out["matrix"]["c"]["a"] == 1.0
    assert out["judge_cost_usd"] == pytest.approx(0.03)
    code = summarise(
        EvalType.CODE, ["a", "b"], [Judgement("e1", "a", score=0.25), Judgement("e2", "a", score=0.75)], {}
    )
    assert code["models"][0] == {"model": "a", "score": 0.5, "judged": 2, "errors": 0, "cost_usd": 0.0}
    assert code["models"][1]["score"] is None and "matrix" not in code
