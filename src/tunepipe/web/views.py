"""What the pages show of a logged call: plain values for the templates, never markup.

Everything a log holds came from a client or a model and is untrusted text. These functions only
pick and format it (JSON pretty-printed, times in UTC); the templates escape all of it, so no
value built here may ever be marked safe.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from tunepipe.domain.logs import LoggedCall


def when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def pretty(value: Any) -> str:
    """JSON for reading: indented, keys in their order, anything unserialisable as text."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()
    except TypeError:
        return repr(value)


def cost(value: float | None) -> str:
    return "" if value is None else f"${value:.6f}".rstrip("0").rstrip(".")


def tags(call: LoggedCall) -> list[tuple[str, str]]:
    return sorted((k, v if v is not None else "") for k, v in call.metadata.items())


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # pretty JSON when the arguments parse, else as sent
    id: str


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    extra: str = ""  # parts that are not text (images, audio), as JSON
    name: str = ""


def _text_of(content: Any) -> tuple[str, str]:
    """A message's text and, apart, whatever parts are not text (as JSON)."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        others = [p for p in content if not (isinstance(p, dict) and isinstance(p.get("text"), str))]
        return "\n".join(texts), pretty(others) if others else ""
    return "", pretty(content)


def _tool_calls(raw: Any) -> list[ToolCall]:
    out: list[ToolCall] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        raw_fn = item.get("function")
        fn: dict[str, Any] = raw_fn if isinstance(raw_fn, dict) else {}
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = pretty(args)
        else:
            with contextlib.suppress(orjson.JSONDecodeError):
                args = pretty(orjson.loads(args))
        out.append(ToolCall(name=str(fn.get("name", "")), arguments=str(args), id=str(item.get("id", ""))))
    return out


def message(raw: Any) -> Message:
    if not isinstance(raw, dict):
        return Message(role="?", text="", extra=pretty(raw))
    text, extra = _text_of(raw.get("content"))
    return Message(
        role=str(raw.get("role", "?")),
        text=text,
        tool_calls=_tool_calls(raw.get("tool_calls")),
        extra=extra,
        name=str(raw.get("name") or raw.get("tool_call_id") or ""),
    )


def request_messages(call: LoggedCall) -> list[Message]:
    req = call.request
    if isinstance(req, dict) and isinstance(req.get("messages"), list):
        return [message(m) for m in req["messages"]]
    if isinstance(req, dict) and isinstance(req.get("input"), str | list):
        return [
            Message(
                role="input", text=req["input"] if isinstance(req["input"], str) else pretty(req["input"])
            )
        ]
    return []


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    finish_reason: str
    message: Message


def response_choices(call: LoggedCall) -> list[Choice]:
    resp = call.response
    if not isinstance(resp, dict) or not isinstance(resp.get("choices"), list):
        return []
    out = []
    for i, choice in enumerate(resp["choices"]):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index")
        out.append(
            Choice(
                index=index if isinstance(index, int) else i,
                finish_reason=str(choice.get("finish_reason") or ""),
                message=message(choice.get("message")),
            )
        )
    return out


def criteria_rows(call: LoggedCall) -> list[dict[str, Any]]:
    """One row per (choice, criterion): the result as the API reports it."""
    rows = []
    for index, results in sorted(call.criteria.items()):
        for name, result in sorted(results.items()):
            rows.append(
                {
                    "choice": index,
                    "criterion": name,
                    "status": result.get("status", ""),
                    "score": result.get("score"),
                    "explanation": result.get("explanation") or result.get("errorMessage") or "",
                }
            )
    return rows


def attempts(call: LoggedCall) -> list[dict[str, Any]]:
    return [a for a in call.attempts or [] if isinstance(a, dict)]
