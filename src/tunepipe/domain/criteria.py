"""Criteria (spec B.6): a reusable LLM judge, its ids, the prompt it is asked, and its verdicts.

A criterion is a judge model plus instructions that decide PASS or FAIL for one output. Its
versions are immutable: editing makes ``name@v2``, and ``name`` alone means the latest. The
judge is asked for ``{explanation, judgement}`` with the explanation first (a model that has
reasoned before it decides decides better), through a JSON schema or a forced tool call so
that any model answers something parseable; :func:`parse_verdict` still reads free text when a
model ignores both. Where the judge's answer carries logprobs, the score is the probability it
gave a pass (:func:`pass_probability`), not a hard 1 or 0.

Pure values and rules: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tunepipe.errors import InvalidRequest, NotFound

VARIABLES = ("messages", "tools", "tool_choice", "output")
"""Templated variables a judge prompt can see; ``output`` is always included."""

OPTIONAL_VARIABLES = ("messages", "tools", "tool_choice")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_ID = re.compile(r"^(?P<name>[^@]+?)(?:@v(?P<version>\d{1,9}))?$")

PASS_THRESHOLD = 0.5
"""A score at or above this counts as a pass (alignment statistics, log filters)."""

VERDICT_TOOL_NAME = "record_judgement"
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "explanation": {"type": "string", "description": "Your reasoning, written before the verdict."},
        "judgement": {"type": "string", "enum": ["PASS", "FAIL"]},
    },
    "required": ["explanation", "judgement"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class Criterion:
    id: str
    project_id: str
    name: str
    version: int
    instructions: str
    judge_model: str
    description: str | None
    variables: tuple[str, ...]
    created_at: int

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True, slots=True)
class CriterionId:
    """``name`` (the latest version) or ``name@vN``."""

    name: str
    version: int | None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@v{self.version}"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(
            "`name` must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="name",
        )
    return name


def parse_criterion_id(text: str) -> CriterionId:
    """Parse ``name`` / ``name@vN``; anything else names no criterion (404, as OpenPipe words it)."""
    m = _ID.match(text.strip())
    if m is None or not _NAME.match(m["name"]):
        name, at, version = text.strip().partition("@")
        if at and _NAME.match(name):  # a criterion's name with a version that cannot exist
            raise not_found(name, version)
        raise not_found(text)
    return CriterionId(m["name"], int(m["version"]) if m["version"] else None)


def not_found(criterion: str, version: int | str | None = None) -> NotFound:
    if version is not None:
        return NotFound(
            f"Criterion version {version} not found for criterion {criterion}",
            param="criterion_id",
            code="criterion_not_found",
        )
    return NotFound(f"Criterion {criterion} not found", param="criterion_id", code="criterion_not_found")


def check_variables(variables: Iterable[str] | None) -> tuple[str, ...]:
    """The optional variables a criterion shows its judge (``output`` is always shown)."""
    if variables is None:
        return OPTIONAL_VARIABLES
    chosen = tuple(dict.fromkeys(v for v in variables if v != "output"))
    unknown = [v for v in chosen if v not in OPTIONAL_VARIABLES]
    if unknown:
        raise InvalidRequest(
            f"Unknown templated variable {unknown[0]!r}; choose from {', '.join(OPTIONAL_VARIABLES)}",
            param="variables",
        )
    return chosen


# ---------------------------------------------------------------- the prompt


@dataclass(frozen=True, slots=True)
class Sample:
    """What a judge looks at: the input a model was given and the output it produced."""

    messages: list[dict[str, Any]]
    output: dict[str, Any]
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def render_output(message: Mapping[str, Any] | None) -> str:
    """An assistant message as a judge reads it: its text, then any tool calls as JSON."""
    if not message:
        return ""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    parts = [content] if isinstance(content, str) and content else []
    calls = message.get("tool_calls") or ([message["function_call"]] if message.get("function_call") else [])
    if calls:
        parts.append("Tool calls:\n" + _json(calls))
    return "\n".join(parts)


def render_variables(sample: Sample, variables: Sequence[str]) -> dict[str, str]:
    values = {"output": render_output(sample.output)}
    if "messages" in variables:
        values["messages"] = _json(sample.messages)
    if "tools" in variables and sample.tools:
        values["tools"] = _json(sample.tools)
    if "tool_choice" in variables and sample.tool_choice is not None:
        values["tool_choice"] = _json(sample.tool_choice)
    return values


_PLACEHOLDER = re.compile(r"\{\{\s*(messages|tools|tool_choice|output)\s*\}\}")

JUDGE_SYSTEM = (
    "You are a careful evaluator. You are shown the input a language model was given and the "
    "output it produced, and instructions that say when the output passes. Explain your reasoning "
    "first, then give your verdict: PASS if the output meets the instructions, FAIL if it does not."
)


def judge_messages(criterion: Criterion, sample: Sample) -> list[dict[str, Any]]:
    """The judge's chat messages. Variables written as ``{{output}}`` (etc.) in the instructions
    are filled in place; those not written there follow as tagged sections."""
    values = render_variables(sample, criterion.variables)
    used: set[str] = set()

    def fill(m: re.Match[str]) -> str:
        used.add(m[1])
        return values.get(m[1], "")

    instructions = _PLACEHOLDER.sub(fill, criterion.instructions)
    sections = [
        f"<{name}>\n{values[name]}\n</{name}>" for name in VARIABLES if name in values and name not in used
    ]
    user = f"<instructions>\n{instructions}\n</instructions>"
    if sections:
        user += "\n\n" + "\n\n".join(sections)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


# ---------------------------------------------------------------- verdicts


class VerdictUnparseable(ValueError):
    """The judge answered, but no verdict could be read from it."""


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    explanation: str | None


_PASS_WORDS = {"pass", "passed", "true", "yes", "1"}
_FAIL_WORDS = {"fail", "failed", "false", "no", "0"}
_FREE_VERDICT = re.compile(r"\b(PASS|FAIL)(?:ED)?\b")


def _verdict_value(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and 0 <= value <= 1:
        return float(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _PASS_WORDS:
            return 1.0
        if word in _FAIL_WORDS:
            return 0.0
    return None


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (bare, or inside a Markdown code fence)."""
    start = text.find("{")
    while start != -1:
        end = text.rfind("}")
        while end > start:
            try:
                value = orjson.loads(text[start : end + 1])
            except orjson.JSONDecodeError:
                end = text.rfind("}", start, end)
                continue
            return value if isinstance(value, dict) else None
        start = text.find("{", start + 1)
    return None


def _from_object(obj: Mapping[str, Any]) -> Verdict | None:
    for key in ("judgement", "judgment", "verdict", "result", "passed", "pass", "score"):
        if key in obj:
            score = _verdict_value(obj[key])
            if score is not None:
                explanation = obj.get("explanation") or obj.get("reasoning") or obj.get("reason")
                return Verdict(score, str(explanation) if explanation is not None else None)
    return None


def message_of(completion: Mapping[str, Any]) -> dict[str, Any]:
    choices = completion.get("choices") or []
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    return message if isinstance(message, dict) else {}


def parse_verdict(completion: Mapping[str, Any]) -> Verdict:
    """Read the verdict from a judge's ``chat.completion``: the tool call's arguments, else a JSON
    object in the text, else a last bare PASS or FAIL in it; the logprobs, when present, turn it
    into the probability of a pass."""
    message = message_of(completion)
    verdict: Verdict | None = None
    for call in message.get("tool_calls") or []:
        args = ((call or {}).get("function") or {}).get("arguments")
        obj = first_json_object(args) if isinstance(args, str) else args if isinstance(args, dict) else None
        if obj is not None and (verdict := _from_object(obj)) is not None:
            break
    content = message.get("content")
    text = content if isinstance(content, str) else render_output({"content": content})
    if verdict is None and text:
        obj = first_json_object(text)
        verdict = _from_object(obj) if obj is not None else None
        if verdict is None:
            found = _FREE_VERDICT.findall(text)
            if found:
                verdict = Verdict(1.0 if found[-1] == "PASS" else 0.0, text.strip())
    if verdict is None:
        shown = (text or orjson.dumps(message).decode())[:200]
        raise VerdictUnparseable(f"The judge's answer holds no PASS or FAIL verdict: {shown!r}")
    probability = pass_probability(completion)
    return Verdict(probability, verdict.explanation) if probability is not None else verdict


_VALUE_START = re.compile(r'"judge?ment"\s*:\s*"')


def _kind(text: str) -> str | None:
    """Whether a token's text begins a PASS or a FAIL (tokenizers split the word differently)."""
    word = text.strip().strip('"').upper()
    if not word:
        return None
    if "PASS".startswith(word) or word.startswith("PASS"):
        return "pass"
    if "FAIL".startswith(word) or word.startswith("FAIL"):
        return "fail"
    return None


def pass_probability(completion: Mapping[str, Any]) -> float | None:
    """The probability of PASS at the token where the verdict's value starts, from the judge's
    top logprobs (renormalised over PASS and FAIL); None when there are no usable logprobs."""
    choices = completion.get("choices") or []
    logprobs = (choices[0].get("logprobs") or {}) if choices and isinstance(choices[0], dict) else {}
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(tokens, list) or not tokens:
        return None
    text = "".join(str(t.get("token", "")) for t in tokens if isinstance(t, dict))
    m = _VALUE_START.search(text)
    if m is None:
        return None
    offset, at = m.end(), 0
    for token in tokens:
        piece = str(token.get("token", ""))
        if at + len(piece) > offset:
            skip = offset - at
            alternatives = list(token.get("top_logprobs") or [])
            if not any(a.get("token") == piece for a in alternatives):
                alternatives.append({"token": piece, "logprob": token.get("logprob")})
            mass = {"pass": 0.0, "fail": 0.0}
            for alt in alternatives:
                alt_text, lp = str(alt.get("token", "")), alt.get("logprob")
                if not isinstance(lp, int | float) or alt_text[:skip] != piece[:skip]:
                    continue
                kind = _kind(alt_text[skip:])
                if kind is not None:
                    mass[kind] += math.exp(lp)
            total = mass["pass"] + mass["fail"]
            return mass["pass"] / total if total > 0 else None
        at += len(piece)
    return None


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One criterion's result for one choice (spec A.1 ``criteria_results``)."""

    name: str
    version: int
    status: str  # success | error
    score: float | None = None
    explanation: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        if self.status == "success":
            out: dict[str, Any] = {"status": "success", "score": self.score}
            if self.explanation is not None:
                out["explanation"] = self.explanation
            return out
        return {"status": "error", "errorCode": self.error_code or 500, "errorMessage": self.error_message}

    @property
    def outcome(self) -> str:
        """pass | fail | error (what log filters select)."""
        if self.status != "success" or self.score is None:
            return "error"
        return "pass" if self.score >= PASS_THRESHOLD else "fail"


def combined_score(results: Iterable[CriterionResult]) -> float:
    """A choice's combined score for best-of-n: the sum of its successful scores."""
    return sum(r.score or 0.0 for r in results if r.status == "success")
