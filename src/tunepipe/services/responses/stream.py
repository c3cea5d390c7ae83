"""A chat-completions stream as a Responses API event stream.

:class:`EventTranslator` is fed the chat chunks one at a time and returns the Responses events
each one causes, numbered in order (``sequence_number``). Output items open when their first
delta arrives (text, or each tool call) and close, in order, when the next kind starts or the
stream ends; the last event is ``response.completed``, ``response.incomplete`` (the model hit
``max_output_tokens``) or ``response.failed``. The final response object is kept on
:attr:`EventTranslator.final` for the service to store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunepipe.protocol.responses import (
    ResponsesRequest,
    call_item,
    ending,
    new_id,
    response_object,
    text_item,
    usage_of,
)


@dataclass(slots=True)
class _Open:
    """An output item being streamed."""

    index: int
    item: dict[str, Any]
    text: list[str] = field(default_factory=list)
    part: str = "output_text"  # a message's part: output_text or refusal


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "refusal":
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "text": text, "annotations": []}


class EventTranslator:
    def __init__(self, req: ResponsesRequest, response_id: str, created_at: int) -> None:
        self._req = req
        self._id = response_id
        self._created_at = created_at
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._text: _Open | None = None
        self._calls: dict[int, _Open] = {}
        self._reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(
            self._req,
            response_id=self._id,
            created_at=self._created_at,
            status=status,
            output=[dict(item) for item in self._output],
            **extra,
        )

    def start(self) -> list[dict[str, Any]]:
        snapshot = self._snapshot("in_progress")
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices") or []
        choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
        if choice is None:
            return events
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str) and content:
            events += self._text_delta(content, "output_text")
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            events += self._text_delta(refusal, "refusal")
        for call in delta.get("tool_calls") or []:
            events += self._call_delta(call)
        if choice.get("finish_reason"):
            self._reason = choice["finish_reason"]
        return events

    def _text_delta(self, text: str, part: str) -> list[dict[str, Any]]:
        """Text or refusal: a message item with one part of that kind (a change of kind starts
        another message)."""
        events = []
        if self._text is not None and self._text.part != part:
            events += self._close_text()
        if self._text is None:
            events += self._close_calls()
            item = {**text_item(new_id("msg"), "", "in_progress"), "content": []}
            self._text = _Open(len(self._output), item, part=part)
            self._output.append(item)
            events.append(
                self._event("response.output_item.added", output_index=self._text.index, item=dict(item))
            )
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=self._text.index,
                    content_index=0,
                    part=_part(part, ""),
                )
            )
        self._text.text.append(text)
        where = {"item_id": self._text.item["id"], "output_index": self._text.index, "content_index": 0}
        if part == "refusal":
            events.append(self._event("response.refusal.delta", **where, delta=text))
        else:
            events.append(self._event("response.output_text.delta", **where, delta=text, logprobs=[]))
        return events

    def _call_delta(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        key = int(call.get("index", 0))
        fn = call.get("function") or {}
        opened = self._calls.get(key)
        if opened is None:
            events += self._close_text()
            item = call_item(
                new_id("fc"), call.get("id") or new_id("call"), fn.get("name") or "", "", "in_progress"
            )
            opened = self._calls[key] = _Open(len(self._output), item)
            self._output.append(item)
            events.append(
                self._event("response.output_item.added", output_index=opened.index, item=dict(item))
            )
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            opened.text.append(arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=opened.item["id"],
                    output_index=opened.index,
                    delta=arguments,
                )
            )
        return events

    def _close_text(self, status: str = "completed") -> list[dict[str, Any]]:
        opened, self._text = self._text, None
        if opened is None:
            return []
        text = "".join(opened.text)
        part = _part(opened.part, text)
        opened.item.update(content=[part], status=status)
        common = {"item_id": opened.item["id"], "output_index": opened.index, "content_index": 0}
        done = (
            self._event("response.refusal.done", **common, refusal=text)
            if opened.part == "refusal"
            else self._event("response.output_text.done", **common, text=text, logprobs=[])
        )
        return [
            done,
            self._event("response.content_part.done", **common, part=part),
            self._event("response.output_item.done", output_index=opened.index, item=opened.item),
        ]

    def _close_calls(self) -> list[dict[str, Any]]:
        events = []
        for opened in self._calls.values():
            arguments = "".join(opened.text)
            opened.item.update(arguments=arguments, status="completed")
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=opened.item["id"],
                    output_index=opened.index,
                    name=opened.item["name"],
                    arguments=arguments,
                )
            )
            events.append(
                self._event("response.output_item.done", output_index=opened.index, item=opened.item)
            )
        self._calls = {}
        return events

    def finish(self) -> list[dict[str, Any]]:
        """The closing events after the last chunk."""
        status, details = ending(self._reason)
        # Items close in the order they opened.
        text_first = self._text is not None and all(self._text.index < c.index for c in self._calls.values())
        closing = (
            self._close_text(status) + self._close_calls()
            if text_first
            else self._close_calls() + self._close_text(status)
        )
        self.final = self._snapshot(status, usage=usage_of(self._usage), incomplete_details=details)
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return [*closing, self._event(kind, response=self.final)]

    def fail(self, message: str) -> list[dict[str, Any]]:
        """The stream broke off: what arrived, then ``response.failed`` with the error."""
        closing = self._close_text("incomplete") + self._close_calls()
        self.final = self._snapshot(
            "failed", usage=usage_of(self._usage), error={"code": "server_error", "message": message}
        )
        return [*closing, self._event("response.failed", response=self.final)]
