"""A chat answer in Anthropic's Messages shape: a completion as a message
(:func:`to_message`), a stream's chunks as Messages stream events (:class:`EventTranslator`).

The request's side is :mod:`tunepipe.protocol.messages`. Only the first choice is read: a
Messages request cannot ask for more than one.
"""

from __future__ import annotations

from typing import Any

import orjson

JSON = dict[str, Any]

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(choice: JSON, stop_sequences: list[str] | None) -> tuple[str, str | None]:
    """Anthropic's ``stop_reason`` and ``stop_sequence`` for a chat choice.

    Chat's ``stop`` covers both the end of a turn and a stop sequence; only servers that say
    which sequence matched (vLLM's ``stop_reason``) tell them apart, so otherwise it is
    ``end_turn``.
    """
    finish = choice.get("finish_reason")
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and matched in (stop_sequences or ()):
        return "stop_sequence", matched
    return _STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn", None


def message_usage(usage: Any) -> JSON:
    """Anthropic ``usage`` from chat's: cached prompt tokens are reads, the rest is input."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = usage.get("prompt_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": max(0, prompt - cached),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def tool_input(arguments: Any) -> JSON:
    """A tool call's JSON ``arguments`` as a ``tool_use`` input, which must be an object: any
    other value (a model's malformed JSON) is kept whole under ``arguments``."""
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        parsed = arguments
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def to_message(completion: JSON, *, message_id: str, model: str, stop_sequences: list[str] | None) -> JSON:
    """A chat completion (its first choice) as an Anthropic message."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    blocks: list[JSON] = []
    text = _text_of(message.get("content")) or message.get("refusal") or ""
    if text:
        blocks.append({"type": "text", "text": text})
    calls = list(message.get("tool_calls") or [])
    if isinstance(message.get("function_call"), dict):
        calls.append({"id": f"toolu_{message_id}", "function": message["function_call"]})
    for call in calls:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{message_id}_{len(blocks)}",
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    reason, sequence = stop_reason(choice, stop_sequences)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": message_usage(completion.get("usage")),
    }


class EventTranslator:
    """Turns a chat stream's chunks into Messages stream events.

    :meth:`start` opens the message, :meth:`feed` takes each chunk in order, :meth:`finish`
    closes the last block and the message; each returns the events to send. Anthropic numbers
    content blocks in one sequence and sends one block at a time, so text and each tool call
    get the next block index as they begin, and a block is closed when the next one opens.

    Chat reports usage only in its last chunk, so ``message_start`` says 0 input tokens and
    ``message_delta`` carries the real counts (input included, as Anthropic's newer API does).
    """

    def __init__(self, *, message_id: str, model: str, stop_sequences: list[str] | None) -> None:
        self.message_id = message_id
        self.model = model
        self._stops = stop_sequences
        self._open: tuple[int, str] | None = None  # (block index, "text" or tool key)
        self._blocks = 0
        self._tools: dict[str, int] = {}
        self._choice: JSON = {}
        self._usage: Any = None

    def start(self) -> list[JSON]:
        message: JSON = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": message_usage(None),
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def feed(self, chunk: JSON) -> list[JSON]:
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        events: list[JSON] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = _text_of(delta.get("content")) or delta.get("refusal")
            if text:
                events.extend(self._text(text))
            for call in delta.get("tool_calls") or ():
                events.extend(self._tool(str(call.get("index", 0)), call))
            if isinstance(delta.get("function_call"), dict):
                events.extend(self._tool("function_call", {"function": delta["function_call"]}))
            if choice.get("finish_reason") and not self._choice:
                self._choice = {
                    "finish_reason": choice["finish_reason"],
                    "stop_reason": choice.get("stop_reason"),
                }
        return events

    def finish(self) -> list[JSON]:
        events = self._close()
        reason, sequence = stop_reason(self._choice, self._stops)
        usage = message_usage(self._usage)
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": usage,
            }
        )
        events.append({"type": "message_stop"})
        return events

    def _close(self) -> list[JSON]:
        if self._open is None:
            return []
        index, self._open = self._open[0], None
        return [{"type": "content_block_stop", "index": index}]

    def _begin(self, key: str, block: JSON) -> list[JSON]:
        events = self._close()
        index = self._blocks
        self._blocks += 1
        self._open = (index, key)
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        return events

    def _text(self, text: str) -> list[JSON]:
        events = (
            []
            if self._open is not None and self._open[1] == "text"
            else self._begin("text", {"type": "text", "text": ""})
        )
        events.append(
            {
                "type": "content_block_delta",
                "index": self._open[0] if self._open else 0,
                "delta": {"type": "text_delta", "text": text},
            }
        )
        return events

    def _tool(self, key: str, call: JSON) -> list[JSON]:
        function = call.get("function") or {}
        events: list[JSON] = []
        if key not in self._tools or (call.get("id") and (self._open is None or self._open[1] != key)):
            block_id = call.get("id") or f"toolu_{self.message_id}_{self._blocks}"
            block: JSON = {
                "type": "tool_use",
                "id": block_id,
                "name": function.get("name") or "",
                "input": {},
            }
            events = self._begin(key, block)
            self._tools[key] = self._blocks - 1
        arguments = function.get("arguments")
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append({"type": "content_block_delta", "index": self._tools[key], "delta": delta})
        return events
