"""Anthropic answers in OpenAI shape: a finished message as a ``chat.completion``, a stream of
Messages events as ``chat.completion.chunk`` dicts.

Usage follows OpenAI's accounting: Anthropic reports cache reads and cache writes apart from
``input_tokens``, OpenAI counts every prompt token in ``prompt_tokens``, so both are added back
in and cache reads are also shown as ``cached_tokens``. Thinking blocks surface as
``reasoning_content``, the field OpenAI-compatible servers (vLLM, DeepSeek) use for them.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tunepipe.errors import UpstreamError

JSON = dict[str, Any]

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def openai_usage(usage: JSON) -> JSON:
    """OpenAI ``usage`` from Anthropic's, counting cache reads and writes as prompt tokens."""
    cache_read = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cache_read + (usage.get("cache_creation_input_tokens") or 0)
    completion = usage.get("output_tokens") or 0
    out: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.get("cache_read_input_tokens") is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cache_read}
    return out


def finish_reason(stop_reason: str | None) -> str | None:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason`` (unknown ones read as stop)."""
    return None if stop_reason is None else _FINISH_REASONS.get(stop_reason, "stop")


def openai_tool_call(block: JSON) -> JSON:
    """An OpenAI ``tool_calls`` entry for an Anthropic ``tool_use`` block."""
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": arguments},
    }


def to_openai_completion(resp: JSON, model: str, *, created: int | None = None) -> JSON:
    """Translate an Anthropic message to an OpenAI ``chat.completion``."""
    texts: list[str] = []
    thoughts: list[str] = []
    tool_calls: list[JSON] = []
    for block in resp.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            thoughts.append(block.get("thinking", ""))
        elif kind == "tool_use":
            tool_calls.append(openai_tool_call(block))
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    return {
        "id": resp.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(resp.get("stop_reason")) or "stop",
            }
        ],
        "usage": openai_usage(resp.get("usage") or {}),
    }


class StreamTranslator:
    """Turns one Anthropic Messages stream into OpenAI ``chat.completion.chunk`` dicts.

    Feed it every event in order; each call returns the chunks to send (often none). Anthropic
    numbers content blocks across text and tools alike, while OpenAI numbers tool calls on their
    own, so the translator keeps the mapping from block index to tool-call index.

    Args:
        model: the ``model`` every chunk carries.
        include_usage: end with OpenAI's usage-only chunk (``choices: []``) on ``message_stop``,
            as ``stream_options.include_usage`` asks.
        created: the chunks' ``created`` timestamp (now, if not given).
    """

    def __init__(self, model: str, *, include_usage: bool = False, created: int | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.id = ""
        self.finish_reason: str | None = None
        self._usage: JSON = {}
        self._tool_index: dict[int, int] = {}

    @property
    def usage(self) -> JSON:
        """OpenAI ``usage`` for what has been streamed so far."""
        return openai_usage(self._usage)

    def feed(self, event_type: str, data: JSON) -> list[JSON]:
        """The chunks for one event; unknown event types are ignored, as Anthropic asks.

        Raises:
            UpstreamError: on an ``error`` event.
        """
        kind = event_type or data.get("type", "")
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id") or self.id
            self._add_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(data.get("index", 0), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(data.get("index", 0), data.get("delta") or {})
        if kind == "message_delta":
            self._add_usage(data.get("usage"))
            self.finish_reason = finish_reason((data.get("delta") or {}).get("stop_reason")) or "stop"
            return [self._chunk({}, self.finish_reason)]
        if kind == "message_stop":
            return [self.usage_chunk()] if self.include_usage else []
        if kind == "error":
            error = data.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            code = error.get("type") if isinstance(error, dict) else None
            raise UpstreamError(f"Anthropic failed mid-stream: {message}", code=code, upstream_body=data)
        return []

    def usage_chunk(self) -> JSON:
        """OpenAI's closing usage-only chunk."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage,
        }

    def _add_usage(self, usage: Any) -> None:
        # message_delta repeats counts cumulatively, so the latest non-null value wins.
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _block_start(self, index: int, block: JSON) -> list[JSON]:
        kind = block.get("type")
        if kind == "tool_use":
            tool_index = self._tool_index.setdefault(index, len(self._tool_index))
            call = {
                "index": tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk({"reasoning_content": block["thinking"]})]
        return []

    def _block_delta(self, index: int, delta: JSON) -> list[JSON]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
            call = {"index": self._tool_index[index], "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        return []

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
