"""The entry rules of spec D, the legacy conversions and the split assignment."""

from typing import Any

import pytest

from tunepipe.domain.dataset_entries import (
    EntryInvalid,
    assign_split,
    export_line,
    input_hash,
    parse_entry,
)

USER = {"role": "user", "content": "hi"}
ANSWER = {"role": "assistant", "content": "hello"}


def entry(**extra: Any) -> dict[str, Any]:
    return {"messages": [USER, ANSWER], **extra}


def error(raw: Any) -> str:
    with pytest.raises(EntryInvalid) as info:
        parse_entry(raw)
    return str(info.value)


def test_parse_entry_splits_off_the_output() -> None:
    data = parse_entry(entry(split="TEST", metadata={"k": "v"}))
    assert data.messages == [USER]
    assert data.output == ANSWER
    assert data.split == "TEST"
    assert data.metadata == {"k": "v"}


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({}, "empty row"),
        ([], "JSON object"),
        ({"messages": []}, "non-empty"),
        ({"messages": "hi"}, "non-empty"),
        ({"messages": [USER]}, "last message must be an assistant"),
        ({"messages": [{"role": "user"}, ANSWER]}, "needs `content`"),
        ({"messages": [USER, {"role": "assistant"}]}, "needs `content` or `tool_calls`"),
        ({"messages": [{"role": "robot", "content": "x"}, ANSWER]}, "role must be"),
        ({"messages": [USER, {"role": "tool", "content": "x"}, ANSWER]}, "tool_call_id"),
        ({"messages": [USER, {"role": "function", "content": "x"}, ANSWER]}, "needs `name`"),
        (entry(split="VALIDATE"), "TRAIN"),
        (entry(metadata={"n": 1}), "must be a string"),
        (entry(rejected_message={"role": "user", "content": "x"}), "rejected_message must be an assistant"),
        (
            {"messages": [USER, {"role": "assistant", "content": None, "function_call": {"name": "f"}}]},
            "arguments",
        ),
    ],
)
def test_parse_entry_rejects(raw: Any, needle: str) -> None:
    assert needle in error(raw)


def test_parse_entry_rejects_text_with_tool_calls() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = {"role": "assistant", "content": "text", "tool_calls": [call]}
    assert "cannot combine" in error({"messages": [USER, message]})


def test_parse_entry_accepts_tool_calls_with_empty_content() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    data = parse_entry({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [call]}]})
    assert data.output["tool_calls"] == [call]


def test_parse_entry_converts_legacy_functions() -> None:
    raw = {
        "messages": [
            USER,
            {"role": "assistant", "content": None, "function_call": {"name": "get", "arguments": "{}"}},
            {"role": "function", "name": "get", "content": "42"},
            {"role": "assistant", "content": None, "function_call": {"name": "get", "arguments": '{"a":1}'}},
        ],
        "functions": [{"name": "get", "parameters": {"type": "object"}}],
        "function_call": {"name": "get"},
    }
    data = parse_entry(raw)
    assert data.tools == [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}]
    assert data.tool_choice == {"type": "function", "function": {"name": "get"}}
    first_call = data.messages[1]["tool_calls"][0]
    assert "function_call" not in data.messages[1]
    assert data.messages[2] == {"role": "tool", "tool_call_id": first_call["id"], "content": "42"}
    assert data.output["tool_calls"][0]["function"] == {"name": "get", "arguments": '{"a":1}'}


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_parse_entry_converts_legacy_function_call_modes(choice: str) -> None:
    assert parse_entry(entry(functions=[{"name": "f"}], function_call=choice)).tool_choice == choice


def test_parse_entry_reads_the_legacy_input_output_form() -> None:
    legacy = {"input": {"messages": [USER]}, "output": ANSWER, "split": "TRAIN"}
    assert parse_entry(legacy) == parse_entry(entry(split="TRAIN"))


def test_input_hash_ignores_key_order_and_output() -> None:
    a = input_hash([{"role": "user", "content": "x"}], None, None, None)
    b = input_hash([{"content": "x", "role": "user"}], [], None, None)
    assert a == b
    assert (
        parse_entry(entry()).input_hash
        == parse_entry({"messages": [USER, {"role": "assistant", "content": "other"}]}).input_hash
    )


def test_assign_split_is_deterministic_and_reaches_the_ratio() -> None:
    hashes = [input_hash([{"role": "user", "content": f"q{i}"}], None, None, None) for i in range(5000)]
    splits = [assign_split(h, 0.9) for h in hashes]
    assert splits == [assign_split(h, 0.9) for h in hashes]
    test_share = splits.count("TEST") / len(splits)
    assert 0.08 < test_share < 0.12
    assert {assign_split(h, 1.0) for h in hashes} == {"TRAIN"}


def test_export_line_round_trips() -> None:
    raw = entry(
        split="TEST",
        tools=[{"type": "function", "function": {"name": "f"}}],
        tool_choice="auto",
        rejected_message={"role": "assistant", "content": "worse"},
        metadata={"k": "v"},
    )
    data = parse_entry(raw)
    assert export_line(data, include_split=True) == raw
    assert "split" not in export_line(data, include_split=False)
    assert parse_entry(export_line(data, include_split=True)) == data
