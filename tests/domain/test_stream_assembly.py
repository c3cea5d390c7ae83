"""Rebuilding a chat.completion from its chunks: n > 1, tool-call deltas, usage, extras."""

from typing import Any

from tunepipe.domain.stream_assembly import StreamAssembler


def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": choices,
        **extra,
    }


def delta(index: int, finish_reason: str | None = None, **d: Any) -> dict[str, Any]:
    return {"index": index, "delta": d, "finish_reason": finish_reason}


def assemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    assembler = StreamAssembler()
    for c in chunks:
        assembler.feed(c)
    return assembler.completion()


def test_stream_assembler_joins_content_deltas() -> None:
    out = assemble(
        [
            chunk([delta(0, role="assistant", content="")]),
            chunk([delta(0, content="Hello")]),
            chunk([delta(0, content=", world")]),
            chunk([delta(0, "stop")], system_fingerprint="fp_1"),
        ]
    )
    assert out["id"] == "chatcmpl-1"
    assert out["object"] == "chat.completion"
    assert out["model"] == "gpt-4o"
    assert out["created"] == 1700000000
    assert out["system_fingerprint"] == "fp_1"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, world"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert "usage" not in out


def test_stream_assembler_keeps_choices_apart_when_n_greater_than_one() -> None:
    assembler = StreamAssembler()
    # Interleaved, as providers send them for n > 1.
    for c in [
        chunk([delta(1, content="B1")]),
        chunk([delta(0, content="A1")]),
        chunk([delta(1, content=" B2")]),
        chunk([delta(0, content=" A2")]),
        chunk([delta(0, "stop"), delta(1, "length")]),
    ]:
        assembler.feed(c)
    out = assembler.completion()
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert out["choices"][0]["message"]["content"] == "A1 A2"
    assert out["choices"][1]["message"]["content"] == "B1 B2"
    assert [c["finish_reason"] for c in out["choices"]] == ["stop", "length"]
    assert assembler.finish_reason == "stop"
    assert assembler.chunks == 5


def test_stream_assembler_joins_tool_call_argument_deltas() -> None:
    head = {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    second = {
        "index": 1,
        "id": "call_b",
        "type": "function",
        "function": {"name": "get_time", "arguments": ""},
    }
    out = assemble(
        [
            chunk([delta(0, role="assistant", content=None, tool_calls=[head])]),
            chunk([delta(0, tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}])]),
            chunk([delta(0, tool_calls=[second])]),
            chunk([delta(0, tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}])]),
            chunk([delta(0, tool_calls=[{"index": 1, "function": {"arguments": "{}"}}])]),
            chunk([delta(0, "tool_calls")]),
        ]
    )
    message = out["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert out["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_assembler_joins_legacy_function_call_deltas() -> None:
    out = assemble(
        [
            chunk([delta(0, function_call={"name": "lookup", "arguments": ""})]),
            chunk([delta(0, function_call={"arguments": '{"q":'})]),
            chunk([delta(0, function_call={"arguments": ' "x"}'})]),
            chunk([delta(0, "function_call")]),
        ]
    )
    assert out["choices"][0]["message"]["function_call"] == {"name": "lookup", "arguments": '{"q": "x"}'}
    assert out["choices"][0]["finish_reason"] == "function_call"


def test_stream_assembler_takes_usage_from_final_chunk() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    out = assemble(
        [
            chunk([delta(0, content="hi")], usage=None),
            chunk([delta(0, "stop")], usage=None),
            chunk([], usage=usage),
        ]
    )
    assert out["usage"] == usage
    assert out["choices"][0]["message"]["content"] == "hi"


def test_stream_assembler_collects_reasoning_refusal_and_logprobs() -> None:
    lp1 = {"token": "No", "logprob": -0.1, "bytes": None, "top_logprobs": []}
    lp2 = {"token": "pe", "logprob": -0.2, "bytes": None, "top_logprobs": []}
    out = assemble(
        [
            chunk([delta(0, reasoning_content="think ")]),
            chunk([delta(0, reasoning="more")]),
            chunk([{**delta(0, refusal="No"), "logprobs": {"content": [lp1]}}]),
            chunk([{**delta(0, refusal="pe"), "logprobs": {"content": [lp2]}}]),
            chunk([delta(0, "content_filter")]),
        ]
    )
    choice = out["choices"][0]
    assert choice["message"]["reasoning_content"] == "think more"
    assert choice["message"]["refusal"] == "Nope"
    assert choice["message"]["content"] is None
    assert choice["logprobs"] == {"content": [lp1, lp2]}


def test_stream_assembler_empty_stream_gives_empty_completion() -> None:
    assembler = StreamAssembler()
    out = assembler.completion()
    assert out["choices"] == []
    assert out["id"] is None
    assert assembler.finish_reason is None
