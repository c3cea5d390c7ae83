"""The built-in graders' arithmetic, source checking, and the sandbox's promise that a grader's
failure (raise, bad value, endless loop, memory, CPU) costs one case and leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from tunepipe.graders import (
    BUILTIN,
    Case,
    Grade,
    GraderInvalid,
    Limits,
    check_source,
    exact_match,
    json_field_match,
    run_grader,
    text_similarity,
)


def _message(content: Any = None, calls: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(calls)
        ]
    return message


def _case(content: Any, expected: Any = None) -> Case:
    messages = [{"role": "user", "content": "hi"}]
    return Case(messages, None, None, _message(content), None if expected is None else _message(expected))


def _score(grader: Any, generated: dict[str, Any], expected: dict[str, Any] | None) -> float:
    return float(grader([], None, None, generated, expected))


def test_exact_match_tool_calls_compare_parsed_arguments() -> None:
    expected = _message(None, [("lookup", '{"city": "Paris", "days": 2}')])
    reordered = _message(None, [("lookup", '{ "days": 2,\n "city": "Paris" }')])
    other_value = _message(None, [("lookup", '{"city": "Paris", "days": 3}')])
    other_name = _message(None, [("search", '{"city": "Paris", "days": 2}')])
    assert _score(exact_match, reordered, expected) == 1.0
    assert _score(exact_match, other_value, expected) == 0.0
    assert _score(exact_match, other_name, expected) == 0.0
    not_json = _message(None, [("x", "not json")])
    assert _score(exact_match, not_json, not_json) == 1.0


def test_exact_match_content_strips_and_joins_parts() -> None:
    parts = [{"type": "text", "text": "hello "}, {"type": "text", "text": "world"}]
    assert _score(exact_match, _message(parts), _message("  hello world\n")) == 1.0
    assert _score(exact_match, _message("hello"), _message("Hello")) == 0.0


def test_json_field_match_content_counts_fields_over_the_union() -> None:
    two_of_three = _score(
        json_field_match, _message('{"a": 1, "b": 2, "c": 3}'), _message('{"a": 1, "b": 2, "c": 4}')
    )
    assert two_of_three == pytest.approx(2 / 3)
    # Paths: a.b, a.c.0, a.c.1, d -- a.b and a.c.0 match.
    nested = _score(
        json_field_match,
        _message('{"a": {"b": 1, "c": [1, 2]}}'),
        _message('{"a": {"b": 1, "c": [1, 3]}, "d": 0}'),
    )
    assert nested == pytest.approx(0.5)
    assert _score(json_field_match, _message("{}"), _message("{}")) == 1.0
    assert _score(json_field_match, _message('{"flag": 1}'), _message('{"flag": true}')) == 0.0
    assert _score(json_field_match, _message("sorry, no JSON"), _message('{"a": 1}')) == 0.0


def test_json_field_match_tool_calls_pair_by_position() -> None:
    expected = _message(None, [("a", '{"x": 1}'), ("b", '{"y": 1, "z": 2}')])
    generated = _message(None, [("wrong", '{"x": 1}'), ("b", '{"y": 1, "z": 3}')])
    # Call 1: name mismatch -> 0; call 2: 1 of 2 fields -> 0.5; mean over 2 calls.
    assert _score(json_field_match, generated, expected) == pytest.approx(0.25)
    one_call = _message(None, [("a", '{"x": 1}')])
    assert _score(json_field_match, one_call, expected) == pytest.approx(0.5)
    assert _score(json_field_match, _message('{"x": 1}'), one_call) == 0.0


def test_text_similarity_ratio_of_content_or_calls() -> None:
    assert _score(text_similarity, _message("abcd"), _message("abce")) == pytest.approx(0.75)
    calls = [("lookup", '{"city": "Paris"}')]
    assert _score(text_similarity, _message(None, calls), _message(None, calls)) == 1.0
    rome = _message(None, [("lookup", '{"city": "Rome"}')])
    assert 0.0 < _score(text_similarity, rome, _message(None, calls)) < 1.0


def test_check_source_accepts_builtins_and_assignments() -> None:
    for source in BUILTIN.values():
        check_source(source)
    check_source("def score(*args):\n    return 1.0\n\ngrader = score\n")


def test_check_source_syntax_error_names_the_line() -> None:
    with pytest.raises(GraderInvalid, match=r"line 3: .*"):
        check_source("def grader(*args):\n    return 1.0\nif :\n")


def test_check_source_without_grader_is_invalid() -> None:
    with pytest.raises(GraderInvalid, match="no top-level function named `grader`"):
        check_source("def helper():\n    def grader():\n        return 1\n")
    with pytest.raises(GraderInvalid, match="async def"):
        check_source("async def grader(*args):\n    return 1.0\n")


def test_check_source_does_not_run_the_source(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    check_source(f"open({str(marker)!r}, 'w').close()\nraise SystemExit\ndef grader(*a):\n    return 1\n")
    assert not marker.exists()


async def test_run_grader_invalid_source_raises_before_starting() -> None:
    with pytest.raises(GraderInvalid):
        await run_grader("def grader(:\n", [_case("x")])


async def test_run_grader_scores_every_case_in_order() -> None:
    source = dedent("""\
        def grader(messages, tools, tool_choice, generated, expected):
            return len(generated["content"]) / 10
    """)
    grades = await run_grader(source, [_case("a" * n) for n in (0, 3, 10)])
    assert grades == [Grade(0.0), Grade(0.3), Grade(1.0)]


async def test_run_grader_builtins_take_the_sandbox_path() -> None:
    cases = [_case('{"a": 1, "b": 2, "c": 3}', '{"a": 1, "b": 2, "c": 4}'), _case("same", "same")]
    by_fields = await run_grader(BUILTIN["json_field_match"], cases)
    assert [g.score for g in by_fields] == [pytest.approx(2 / 3), 1.0]
    assert [g.score for g in await run_grader(BUILTIN["exact_match"], cases)] == [0.0, 1.0]


async def test_run_grader_exception_fails_only_that_case() -> None:
    source = dedent("""\
        def grader(messages, tools, tool_choice, generated, expected):
            if generated["content"] == "bad":
                raise ValueError("no good")
            return 1.0
    """)
    grades = await run_grader(source, [_case("ok"), _case("bad"), _case("ok")])
    assert grades[0] == grades[2] == Grade(1.0)
    assert grades[1] == Grade(None, "ValueError: no good (line 3)")


async def test_run_grader_endless_loop_times_out_one_case() -> None:
    source = dedent("""\
        def grader(messages, tools, tool_choice, generated, expected):
            while generated["content"] == "loop":
                pass
            return 0.5
    """)
    cases = [_case("ok"), _case("loop"), _case("ok"), _case("ok")]
    started = time.monotonic()
    grades = await run_grader(source, cases, Limits(timeout_s=1))
    assert time.monotonic() - started < 4
    assert grades == [Grade(0.5), Grade(None, "grader timed out after 1 s"), Grade(0.5), Grade(0.5)]


async def test_run_grader_memory_blowup_fails_one_case() -> None:
    source = dedent("""\
        def grader(messages, tools, tool_choice, generated, expected):
            if generated["content"] == "big":
                return len(b"x" * 10**10)
            return 1.0
    """)
    grades = await run_grader(source, [_case("big"), _case("ok")], Limits(memory_mb=256))
    assert grades == [Grade(None, "grader ran out of memory"), Grade(1.0)]


async def test_run_grader_cpu_limit_kills_the_child() -> None:
    source = "def grader(*args):\n    while True:\n        pass\n"
    grades = await run_grader(source, [_case("spin")], Limits(timeout_s=10, cpu_s=1))
    assert grades == [Grade(None, "grader was killed (CPU time limit)")]


async def test_run_grader_rejects_values_that_are_not_scores() -> None:
    source = dedent("""\
        def grader(messages, tools, tool_choice, generated, expected):
            return eval(generated["content"])
    """)
    grades = await run_grader(source, [_case("2.0"), _case("'a'"), _case("float('nan')"), _case("True")])
    assert grades[0] == Grade(None, "grader returned 2.0, outside [0, 1]")
    assert grades[1] == Grade(None, "grader returned str, not a number")
    assert grades[2] == Grade(None, "grader returned nan, outside [0, 1]")
    assert grades[3] == Grade(1.0)  # a bool is a number: `return a == b` is a natural grader


async def test_run_grader_print_does_not_corrupt_replies() -> None:
    source = dedent("""\
        import sys
        print("loading")
        def grader(messages, tools, tool_choice, generated, expected):
            print('{"score": 0.0}')
            sys.stdout.write("noise\\n")
            input()  # stdin is /dev/null, not the next case
            return 0.75
    """)
    assert await run_grader(source, [_case("a"), _case("b")]) == [
        Grade(None, "EOFError: EOF when reading a line (line 6)"),
        Grade(None, "EOFError: EOF when reading a line (line 6)"),
    ]
    assert await run_grader(source.replace("input()", "pass"), [_case("a"), _case("b")]) == [
        Grade(0.75),
        Grade(0.75),
    ]


async def test_run_grader_load_failure_fails_every_case_once() -> None:
    source = "raise RuntimeError('broken at import')\ndef grader(*args):\n    return 1.0\n"
    grades = await run_grader(source, [_case("a"), _case("b"), _case("c")])
    assert {g.error for g in grades} == {"grader failed to load: RuntimeError: broken at import (line 1)"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed process nobody has reaped yet is gone too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


async def test_run_grader_leaves_no_process_behind(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    source = dedent(f"""\
        import os, subprocess, sys
        def grader(messages, tools, tool_choice, generated, expected):
            sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{os.getpid()}} {{sleeper.pid}}\\n")
            while generated["content"] == "hang":
                pass
            return 1.0
    """)
    grades = await run_grader(source, [_case("hang"), _case("ok")], Limits(timeout_s=1))
    assert [g.score for g in grades] == [None, 1.0]
    recorded = [int(pid) for pid in pids.read_text().split()]
    assert len(recorded) == 4 and recorded[0] != recorded[2]  # a fresh child after the timeout
    deadline = time.monotonic() + 2  # an orphaned grandchild is reaped by init, asynchronously
    while any(_alive(pid) for pid in recorded) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert [pid for pid in recorded if _alive(pid)] == []


def test_builtin_sources_are_importable_by_name() -> None:
    namespace: dict[str, Any] = {}
    exec(BUILTIN["text_similarity"], namespace)
    assert namespace["grader"] is text_similarity
    assert sorted(BUILTIN) == ["exact_match", "json_field_match", "text_similarity"]
