"""What the detail page shows of a call: text parts, tool calls with readable arguments,
criteria rows; values only (the templates escape them)."""

from __future__ import annotations

from typing import Any

from tunepipe.domain.logs import LoggedCall
from tunepipe.web import views


def call(request: Any, response: Any, **kw: Any) -> LoggedCall:
    values: dict[str, Any] = {
        "id": "c1",
        "requested_at": 1_700_000_000_000,
        "received_at": None,
        "duration_ms": 12,
        "model": "m",
        "status_code": 200,
        "error_message": None,
        "input_tokens": 1,
        "output_tokens": 2,
        "cost": 0.0001,
        "finish_reason": "stop",
        "completion_id": None,
        "cache_hit": False,
        "source": "proxy",
        "streamed": False,
        "metadata": {},
        "request": request,
        "response": response,
    }
    values.update(kw)
    return LoggedCall(**values)


def test_views_split_text_parts_from_other_parts_and_format_tool_calls() -> None:
    c = call(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look at"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        {"type": "text", "text": "<b>this</b>"},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_9", "content": "42"},
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "a", "function": {"name": "f", "arguments": '{"x":1}'}},
                            {"id": "b", "function": {"name": "g", "arguments": "not json"}},
                        ],
                    },
                }
            ]
        },
    )
    user, tool = views.request_messages(c)
    assert user.text == "look at\n<b>this</b>"  # as text: escaping is the template's job
    assert "image_url" in user.extra and "https://x/y.png" in user.extra
    assert tool.role == "tool" and tool.name == "call_9" and tool.text == "42"
    (choice,) = views.response_choices(c)
    assert choice.finish_reason == "tool_calls"
    assert [(t.name, t.arguments) for t in choice.message.tool_calls] == [
        ("f", '{\n  "x": 1\n}'),
        ("g", "not json"),
    ]


def test_views_tolerate_odd_bodies_and_list_criteria_rows() -> None:
    odd = call("not a dict", {"choices": "nope"})
    assert views.request_messages(odd) == [] and views.response_choices(odd) == []
    judged = call(
        {"messages": []},
        None,
        criteria={0: {"tone": {"status": "success", "score": 1.0, "explanation": "polite"}}},
        attempts=[{"model": "a", "status": 503, "latency_ms": 3, "error": "down"}, "junk"],
    )
    assert views.criteria_rows(judged) == [
        {"choice": 0, "criterion": "tone", "status": "success", "score": 1.0, "explanation": "polite"}
    ]
    assert views.attempts(judged) == [{"model": "a", "status": 503, "latency_ms": 3, "error": "down"}]
    assert views.cost(0.00012) == "$0.00012" and views.cost(None) == ""
    assert views.when(0) == "1970-01-01 00:00:00"
