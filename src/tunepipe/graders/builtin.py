"""The built-in code graders: ``exact_match``, ``json_field_match`` and ``text_similarity``.

Each is a plain function with the user-grader signature, so it can be tested and called directly.
An evaluation never calls them in process, though: ``BUILTIN`` maps each name to a two-line
grader *source* that imports it, and that source runs in the sandbox like any user's. One code
path means a built-in gets the same limits, the same errors and the same [0, 1] check.

This module is imported by the sandbox child, so it uses the standard library only.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

Message = dict[str, Any]
Call = tuple[str, Any]  # (function name, parsed arguments, or the raw string when not JSON)
Path = tuple[str | int, ...]


def exact_match(
    messages: list[Message],
    tools: list[Any] | None,
    tool_choice: Any,
    generated_output: Message | None,
    dataset_output: Message | None,
) -> float:
    """1.0 when the contents match after stripping whitespace and the tool calls match in order
    (same names, JSON-equal arguments); else 0.0."""
    generated, expected = generated_output or {}, dataset_output or {}
    same_text = _text(generated.get("content")).strip() == _text(expected.get("content")).strip()
    return 1.0 if same_text and _json_equal(_calls(generated), _calls(expected)) else 0.0


def json_field_match(
    messages: list[Message],
    tools: list[Any] | None,
    tool_choice: Any,
    generated_output: Message | None,
    dataset_output: Message | None,
) -> float:
    """The fraction of fields (dotted paths of the flattened JSON, lists by index) whose values match.

    When both outputs have tool calls, calls are paired by position and scored on their parsed
    arguments (a name mismatch or a missing call scores 0); the score is the mean over the longer
    list. Otherwise both contents are parsed as JSON: 0.0 when the dataset's is JSON and the
    generated is not; exact text equality when the dataset's is not JSON either.
    """
    generated, expected = generated_output or {}, dataset_output or {}
    generated_calls, expected_calls = _calls(generated), _calls(expected)
    if generated_calls and expected_calls:
        total = 0.0
        for (name, args), (expected_name, expected_args) in zip(
            generated_calls, expected_calls, strict=False
        ):
            total += _field_score(args, expected_args) if name == expected_name else 0.0
        return total / max(len(generated_calls), len(expected_calls))
    if generated_calls or expected_calls:
        return 0.0
    text, expected_text = _text(generated.get("content")), _text(expected.get("content"))
    try:
        expected_value = json.loads(expected_text)
    except ValueError:
        return 1.0 if text.strip() == expected_text.strip() else 0.0
    try:
        value = json.loads(text)
    except ValueError:
        return 0.0
    return _field_score(value, expected_value)


def text_similarity(
    messages: list[Message],
    tools: list[Any] | None,
    tool_choice: Any,
    generated_output: Message | None,
    dataset_output: Message | None,
) -> float:
    """``difflib.SequenceMatcher`` ratio of the two texts: the content, or the tool calls serialized
    as JSON when there is no content."""
    a, b = _comparable_text(generated_output or {}), _comparable_text(dataset_output or {})
    return difflib.SequenceMatcher(None, a, b).ratio()


BUILTIN: dict[str, str] = {
    name: f"from tunepipe.graders.builtin import {name}\n\ngrader = {name}\n"
    for name in ("exact_match", "json_field_match", "text_similarity")
}
"""Grader source for each built-in, run by the sandbox exactly like a user's source."""


def _text(content: Any) -> str:
    """A message's content as one string: content parts of type ``text`` are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "")
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        )
    return str(content)


def _calls(message: Message) -> list[Call]:
    """The tool calls of a message (or its legacy ``function_call``), arguments parsed."""
    raw = message.get("tool_calls") or []
    if not raw and isinstance(message.get("function_call"), dict):
        raw = [{"function": message["function_call"]}]
    calls: list[Call] = []
    for call in raw if isinstance(raw, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        function = function if isinstance(function, dict) else {}
        calls.append((str(function.get("name") or ""), _parse(function.get("arguments"))))
    return calls


def _parse(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _comparable_text(message: Message) -> str:
    text = _text(message.get("content")).strip()
    if text:
        return text
    calls = [{"name": name, "arguments": args} for name, args in _calls(message)]
    return json.dumps(calls, sort_keys=True, ensure_ascii=False) if calls else ""


def _field_score(value: Any, expected: Any) -> float:
    fields, expected_fields = _flatten(value), _flatten(expected)
    union = fields.keys() | expected_fields.keys()
    if not union:
        return 1.0
    same = sum(
        1
        for path in union
        if path in fields and path in expected_fields and _json_equal(fields[path], expected_fields[path])
    )
    return same / len(union)


def _flatten(value: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Leaf values by path; an empty object or list is a leaf, so ``{}`` and ``[]`` still count."""
    if isinstance(value, dict) and value:
        items: list[tuple[str | int, Any]] = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list) and value:
        items = list(enumerate(value))
    else:
        return {prefix: value}
    flat: dict[Path, Any] = {}
    for key, item in items:
        flat.update(_flatten(item, (*prefix, key)))
    return flat


def _json_equal(a: Any, b: Any) -> bool:
    """Python equality, except that JSON ``true`` is not ``1`` (tuples compare like lists)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
