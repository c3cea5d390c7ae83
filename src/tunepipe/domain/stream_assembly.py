"""Rebuild a ``chat.completion`` from the ``chat.completion.chunk`` events of a stream.

The gateway forwards chunks as they arrive and feeds each one here on the side; what is logged
(and, later, cached) is the assembled completion. Handles ``n > 1`` (chunks carry a choice
index), tool-call deltas split over many chunks, legacy ``function_call`` deltas, refusals,
reasoning content and logprobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class _Choice:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    function_call: dict[str, str] | None = None
    finish_reason: str | None = None
    logprobs: list[Any] = field(default_factory=list)
    role: str = "assistant"


class StreamAssembler:
    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.system_fingerprint: str | None = None
        self.usage: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}  # a provider's own top-level report (mixture of agents' stages)
        self.chunks = 0
        self._choices: dict[int, _Choice] = {}

    def feed(self, chunk: dict[str, Any]) -> None:
        self.chunks += 1
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        self.created = self.created or chunk.get("created")
        self.system_fingerprint = self.system_fingerprint or chunk.get("system_fingerprint")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("moa"):
            self.extra["moa"] = chunk["moa"]
        for c in chunk.get("choices") or ():
            self._feed_choice(c)

    def _feed_choice(self, c: dict[str, Any]) -> None:
        choice = self._choices.setdefault(int(c.get("index", 0)), _Choice())
        delta = c.get("delta") or {}
        if delta.get("role"):
            choice.role = delta["role"]
        if delta.get("content"):
            choice.content.append(delta["content"])
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            choice.reasoning.append(reasoning)
        if delta.get("refusal"):
            choice.refusal.append(delta["refusal"])
        if delta.get("function_call"):
            fc = choice.function_call or {"name": "", "arguments": ""}
            fc["name"] += delta["function_call"].get("name") or ""
            fc["arguments"] += delta["function_call"].get("arguments") or ""
            choice.function_call = fc
        for tc in delta.get("tool_calls") or ():
            self._feed_tool_call(choice, tc)
        if c.get("finish_reason"):
            choice.finish_reason = c["finish_reason"]
        logprobs = c.get("logprobs")
        if logprobs and logprobs.get("content"):
            choice.logprobs.extend(logprobs["content"])

    @staticmethod
    def _feed_tool_call(choice: _Choice, tc: dict[str, Any]) -> None:
        index = int(tc.get("index", len(choice.tool_calls)))
        slot = choice.tool_calls.setdefault(
            index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if tc.get("id"):
            slot["id"] = tc["id"]
        if tc.get("type"):
            slot["type"] = tc["type"]
        fn = tc.get("function") or {}
        slot["function"]["name"] += fn.get("name") or ""
        slot["function"]["arguments"] += fn.get("arguments") or ""

    @property
    def finish_reason(self) -> str | None:
        first = self._choices.get(0)
        return first.finish_reason if first else None

    def completion(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            c = self._choices[index]
            message: dict[str, Any] = {"role": c.role, "content": "".join(c.content) if c.content else None}
            if c.reasoning:
                message["reasoning_content"] = "".join(c.reasoning)
            if c.refusal:
                message["refusal"] = "".join(c.refusal)
            if c.tool_calls:
                message["tool_calls"] = [c.tool_calls[i] for i in sorted(c.tool_calls)]
            if c.function_call:
                message["function_call"] = c.function_call
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": c.finish_reason,
                    "logprobs": {"content": c.logprobs} if c.logprobs else None,
                }
            )
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.system_fingerprint:
            out["system_fingerprint"] = self.system_fingerprint
        if self.usage is not None:
            out["usage"] = self.usage
        out.update(self.extra)
        return out
