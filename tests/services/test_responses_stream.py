"""Chat chunks → Responses events (:class:`EventTranslator`), each event validated against the
openai SDK's own ``ResponseStreamEvent`` union, for the cases the fake provider does not stream:
refusals, text followed by tool calls, and a stream that breaks off; and a whole response
object against the SDK's ``Response``."""

from __future__ import annotations

from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tunepipe.protocol.responses import ResponsesRequest, ending, output_of, response_object, usage_of
from tunepipe.services.responses.stream import EventTranslator

EVENT = TypeAdapter[Any](ResponseStreamEvent)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _run(chunks: list[dict[str, Any]], *, fail: str | None = None) -> tuple[list[Any], EventTranslator]:
    translator = EventTranslator(ResponsesRequest(model="m", input="x"), "resp_1", 1)
    events = translator.start()
    for chunk in chunks:
        events += translator.feed(chunk)
    events += translator.fail(fail) if fail else translator.finish()
    parsed = [EVENT.validate_python(e) for e in events]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    return parsed, translator


def test_stream_refusal_becomes_refusal_events() -> None:
    events, translator = _run(
        [
            _chunk({"role": "assistant", "refusal": "I can't"}),
            _chunk({"refusal": " help."}),
            _chunk({}, "stop"),
        ]
    )
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[6].refusal == "I can't help."
    final = Response.model_validate(translator.final)
    assert final.output[0].content[0].type == "refusal"  # type: ignore[union-attr]


def test_stream_text_then_tool_calls_close_in_order() -> None:
    events, translator = _run(
        [
            _chunk({"content": "Let me look."}),
            _chunk(
                {"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": '{"a"'}}]}
            ),
            _chunk(
                {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}]}
            ),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
            _chunk({}, "tool_calls"),
            {
                "id": "c",
                "choices": [],
                "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
            },
        ]
    )
    done = [(e.type, e.output_index) for e in events if e.type.endswith(".done") and "output_item" in e.type]
    assert done == [
        ("response.output_item.done", 0),
        ("response.output_item.done", 1),
        ("response.output_item.done", 2),
    ]
    final = Response.model_validate(translator.final)
    assert final.status == "completed" and final.output_text == "Let me look."
    assert [(o.type, getattr(o, "arguments", None)) for o in final.output] == [
        ("message", None),
        ("function_call", '{"a": 1}'),
        ("function_call", "{}"),
    ]
    assert final.usage is not None and (final.usage.input_tokens, final.usage.total_tokens) == (4, 10)


def test_stream_length_finish_is_incomplete() -> None:
    events, translator = _run([_chunk({"content": "cut"}), _chunk({}, "length")])
    assert events[-1].type == "response.incomplete"
    final = Response.model_validate(translator.final)
    assert final.status == "incomplete" and final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens" and final.output[0].status == "incomplete"  # type: ignore[union-attr]


def test_stream_break_ends_with_response_failed() -> None:
    events, translator = _run([_chunk({"content": "half"})], fail="upstream went away")
    assert [e.type for e in events][-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    final = Response.model_validate(translator.final)
    assert (
        final.status == "failed" and final.error is not None and final.error.message == "upstream went away"
    )
    assert final.output_text == "half"


def test_whole_response_object_validates_against_the_sdk() -> None:
    completion = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    req = ResponsesRequest.model_validate(
        {
            "model": "m",
            "input": "x",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}],
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
            "reasoning": {"effort": "low"},
        }
    )
    output, reason = output_of(completion)
    status, details = ending(reason)
    data = response_object(
        req,
        response_id="resp_1",
        created_at=1,
        status=status,
        output=output,
        usage=usage_of(completion["usage"]),
        incomplete_details=details,
    )
    parsed = Response.model_validate(data)
    assert parsed.output_text == "Checking." and parsed.output[1].type == "function_call"
    assert (
        parsed.text is not None
        and parsed.text.format is not None
        and parsed.text.format.type == "json_schema"
    )
    assert parsed.reasoning is not None and parsed.reasoning.effort == "low"
