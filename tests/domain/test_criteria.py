"""Criteria rules without I/O: ids, the judge's prompt, reading verdicts leniently, the pass
probability from logprobs, best-of-n order, and alignment statistics."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from tunepipe.domain.alignment import alignment_stats
from tunepipe.domain.criteria import (
    Criterion,
    CriterionId,
    CriterionResult,
    Sample,
    VerdictUnparseable,
    judge_messages,
    parse_criterion_id,
    parse_verdict,
    pass_probability,
)
from tunepipe.errors import NotFound
from tunepipe.services.gateway.criteria import attach


def completion(message: dict[str, Any], logprobs: Any = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": message, "logprobs": logprobs}]}


def criterion(
    instructions: str = "Be polite.", variables: tuple[str, ...] = ("messages", "tools", "tool_choice")
) -> Criterion:
    return Criterion("id", "p", "polite", 2, instructions, "gpt-4o", None, variables, 0)


def test_criterion_ids_parse_name_and_version() -> None:
    assert parse_criterion_id("polite") == CriterionId("polite", None)
    assert parse_criterion_id("polite@v12") == CriterionId("polite", 12)
    assert str(parse_criterion_id("a.b-c_d@v3")) == "a.b-c_d@v3"
    for bad in ("", "@v1", "polite@vx", "bad name", "a@b@v1"):
        with pytest.raises(NotFound):
            parse_criterion_id(bad)


@pytest.mark.parametrize(
    ("message", "score", "explanation"),
    [
        (
            {
                "tool_calls": [
                    {
                        "function": {
                            "name": "record_judgement",
                            "arguments": '{"explanation": "ok", "judgement": "PASS"}',
                        }
                    }
                ]
            },
            1.0,
            "ok",
        ),
        ({"content": '{"explanation": "rude", "judgement": "FAIL"}'}, 0.0, "rude"),
        ({"content": 'Sure!\n```json\n{"explanation": "fine", "judgement": "pass"}\n```'}, 1.0, "fine"),
        ({"content": '{"reasoning": "r", "passed": true}'}, 1.0, "r"),
        ({"content": '{"score": 0.25}'}, 0.25, None),
        (
            {"content": "It mentions the order number, so PASS."},
            1.0,
            "It mentions the order number, so PASS.",
        ),
        (
            {"content": "First it seemed PASS, but on reflection: FAIL"},
            0.0,
            "First it seemed PASS, but on reflection: FAIL",
        ),
    ],
)
def test_verdicts_are_read_leniently(message: dict[str, Any], score: float, explanation: str | None) -> None:
    verdict = parse_verdict(completion({"role": "assistant", **message}))
    assert (verdict.score, verdict.explanation) == (score, explanation)


def test_a_verdict_that_is_not_there_is_unparseable() -> None:
    for message in ({"content": "I am not sure."}, {"content": None}, {"content": '{"judgement": "maybe"}'}):
        with pytest.raises(VerdictUnparseable):
            parse_verdict(completion({"role": "assistant", **message}))


def token(text: str, lp: float, top: list[tuple[str, float]]) -> dict[str, Any]:
    return {"token": text, "logprob": lp, "top_logprobs": [{"token": t, "logprob": v} for t, v in top]}


def test_pass_probability_reads_the_verdict_token_even_when_tokens_straddle_it() -> None:
    content = '{"explanation": "x", "judgement": "PASS"}'
    tokens = [
        token('{"explanation": "x", "judgement', 0.0, []),
        token('": "', 0.0, []),
        token("P", math.log(0.7), [("P", math.log(0.7)), ("F", math.log(0.2)), ("N", math.log(0.1))]),
        token('ASS"}', 0.0, []),
    ]
    result = completion({"role": "assistant", "content": content}, {"content": tokens})
    assert pass_probability(result) == pytest.approx(0.7 / 0.9)
    assert parse_verdict(result).score == pytest.approx(0.7 / 0.9)
    # A token that starts before the value: its alternatives share the part before it.
    merged = [
        token('{"judgement": "', 0.0, []),
        token("FAIL", math.log(0.6), [("FAIL", math.log(0.6)), ("PASS", math.log(0.4))]),
    ]
    merged[0]["token"] = '{"judgement": '
    merged[1]["token"] = '"FAIL'
    merged[1]["top_logprobs"] = [
        {"token": '"FAIL', "logprob": math.log(0.6)},
        {"token": '"PASS', "logprob": math.log(0.4)},
    ]
    text = '{"judgement": "FAIL"}'
    assert pass_probability(completion({"content": text}, {"content": merged})) == pytest.approx(0.4)
    assert pass_probability(completion({"content": text})) is None


def test_judge_prompt_fills_placeholders_and_appends_the_rest() -> None:
    sample = Sample(
        messages=[{"role": "user", "content": "hi"}],
        output={
            "role": "assistant",
            "content": "hello",
            "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
        },
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    system, user = judge_messages(criterion("Answer to {{ messages }} must be kind."), sample)
    assert system["role"] == "system" and "PASS" in system["content"]
    text = user["content"]
    assert '"content": "hi"' in text.split("</instructions>")[0]  # filled in place
    assert "<messages>" not in text and "<tools>" in text and "<tool_choice>" not in text
    assert "<output>\nhello\nTool calls:" in text
    _, user = judge_messages(criterion("Kind?", variables=()), sample)
    assert (
        "<messages>" not in user["content"]
        and "<tools>" not in user["content"]
        and "<output>" in user["content"]
    )


def test_best_of_n_sorts_choices_and_renumbers_them() -> None:
    data = {"choices": [{"index": i, "message": {"content": str(i)}} for i in range(3)]}
    results = {
        0: [
            CriterionResult("a", 1, "success", 0.2),
            CriterionResult("b", 1, "error", error_code=500, error_message="x"),
        ],
        1: [CriterionResult("a", 1, "success", 0.9), CriterionResult("b", 1, "success", 0.5)],
        2: [CriterionResult("a", 1, "success", 0.2), CriterionResult("b", 1, "success", 0.1)],
    }
    stored = attach(data, results)
    assert [c["message"]["content"] for c in data["choices"]] == ["1", "2", "0"]
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert data["choices"][2]["criteria_results"]["b"] == {
        "status": "error",
        "errorCode": 500,
        "errorMessage": "x",
    }
    assert [(i, r.name) for i, r in stored][:2] == [(0, "a"), (0, "b")] and stored[0][1].score == 0.9
    assert orjson.dumps(data)  # nothing private left on the choices


def test_alignment_statistics_with_fail_as_the_positive_class() -> None:
    pairs: list[tuple[str | None, float | None]] = [
        ("FAIL", 0.0),
        ("FAIL", 0.1),
        ("FAIL", 0.9),
        ("PASS", 0.2),
        ("PASS", 1.0),
        ("PASS", 0.7),
        ("PASS", 0.5),
        (None, 1.0),
        ("PASS", None),
    ]
    s = alignment_stats(pairs)
    assert (s.rows, s.compared, s.unlabelled, s.errors) == (9, 7, 1, 1)
    assert (s.true_fail, s.false_fail, s.missed_fail, s.true_pass) == (2, 1, 1, 3)
    assert s.accuracy == pytest.approx(5 / 7)
    assert (
        s.precision == pytest.approx(2 / 3)
        and s.recall == pytest.approx(2 / 3)
        and s.f1 == pytest.approx(2 / 3)
    )
    chance = (3 / 7) * (3 / 7) + (4 / 7) * (4 / 7)
    assert s.kappa == pytest.approx((5 / 7 - chance) / (1 - chance))
    perfect = alignment_stats([("PASS", 1.0), ("PASS", 0.8)])
    assert (perfect.accuracy, perfect.kappa, perfect.precision, perfect.f1) == (1.0, 1.0, None, None)
    assert alignment_stats([]).accuracy is None
