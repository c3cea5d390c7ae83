"""Models run in-process by the local engine, behind the same provider protocol as remote ones.

This is where the OpenAI request surface meets the engine: sampling parameters, ``n`` (one
sequence per choice, seeds offset by the choice index), stop strings, logprobs, tools (rendered
by the chat template, parsed back into ``tool_calls``; forced by grammar when ``tool_choice``
requires a call) and ``response_format`` (JSON constrained decoding). A fine-tuned model's pruning rules
(``prune_rules``) are applied to the request's messages before anything else, as they were to
its training rows.

While tools are active, a choice's text is held until it finishes, since only the whole text
tells whether it is a tool call; otherwise text streams as it is decoded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tunepipe.domain.pruning import prune
from tunepipe.engine import chat_format
from tunepipe.engine.constrained import ConstraintFactory
from tunepipe.engine.engine import LocalEngine
from tunepipe.engine.loading import LoadedModel
from tunepipe.engine.types import Delta, SamplingParams, SequenceSpec
from tunepipe.errors import InvalidRequest, UpstreamUnavailable
from tunepipe.protocol.tools import function_tools_only
from tunepipe.providers.base import Completion
from tunepipe.providers.legacy import as_function_call, asked_for_functions, legacy_chunks


@dataclass(slots=True)
class _Choice:
    text: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    tokens: int = 0


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


class LocalProvider:
    def __init__(
        self,
        engine: LocalEngine,
        *,
        model_name: str,
        path: Path,
        display_name: str,
        adapter: tuple[str, Path] | None = None,
        default_max_tokens: int = 1024,
        default_temperature: float | None = None,
        prune_rules: tuple[str, ...] = (),
    ) -> None:
        self._engine = engine
        self._model_name = model_name
        self._path = path
        self._adapter = adapter
        self.name = display_name
        self._default_max_tokens = default_max_tokens
        self._default_temperature = default_temperature
        self._prune_rules = prune_rules

    # ------------------------------------------------------------------ request → sequences

    def _specs(self, loaded: LoadedModel, body: dict[str, Any]) -> tuple[list[int], list[SequenceSpec]]:
        prompt = chat_format.render_prompt(loaded.tokenizer, body)
        room = (loaded.max_positions or 1_000_000) - len(prompt)
        if room <= 0:
            raise InvalidRequest(
                f"The prompt has {len(prompt)} tokens; this model's context holds {loaded.max_positions}",
                param="messages",
            )
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        max_tokens = min(int(asked) if asked else self._default_max_tokens, room)
        temperature: float = 1.0
        if body.get("temperature") is not None:
            temperature = float(body["temperature"])
        elif self._default_temperature is not None:
            temperature = self._default_temperature
        seed = body.get("seed")
        base = SamplingParams(
            temperature=float(temperature),
            top_p=float(body["top_p"]) if body.get("top_p") is not None else 1.0,
            presence_penalty=float(body.get("presence_penalty") or 0.0),
            frequency_penalty=float(body.get("frequency_penalty") or 0.0),
            max_tokens=max_tokens,
            stop=_stop(body),
            logprobs=bool(body.get("logprobs")),
            top_logprobs=int(body.get("top_logprobs") or 0),
        )
        n = int(body.get("n") or 1)
        specs = []
        for i in range(n):
            params = base if seed is None else _with_seed(base, int(seed) + i)
            specs.append(
                SequenceSpec(
                    index=i,
                    prompt_ids=prompt,
                    params=params,
                    adapter=self._adapter[0] if self._adapter else None,
                    constraint=self._constraint(loaded, body),
                )
            )
        return prompt, specs

    @staticmethod
    def _constraint(loaded: LoadedModel, body: dict[str, Any]) -> Any:
        forced = chat_format.forced_tool_schema(body)
        fmt = body.get("response_format") or {}
        if forced is None and fmt.get("type") not in ("json_object", "json_schema"):
            return None
        if loaded.constraint_factory is None:
            loaded.constraint_factory = ConstraintFactory(loaded.tokenizer, loaded.vocab_size)
        factory: ConstraintFactory = loaded.constraint_factory
        if forced is not None:
            return factory.lark(chat_format.tool_call_grammar(forced))
        if fmt["type"] == "json_schema":
            return factory.json_schema((fmt.get("json_schema") or {}).get("schema") or {})
        return factory.json_schema(None)

    def _pruned(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body as the engine takes it: function tools only, pruning rules applied."""
        body = function_tools_only(body, self.name)
        if not self._prune_rules or not isinstance(body.get("messages"), list):
            return body
        return {**body, "messages": prune(body["messages"], self._prune_rules).messages}

    async def _start(self, body: dict[str, Any]) -> tuple[LoadedModel, list[int], list[SequenceSpec]]:
        loaded = await self._engine.model(self._model_name, self._path, self._adapter)
        prompt, specs = self._specs(loaded, body)
        return loaded, prompt, specs

    # ------------------------------------------------------------------ non-streaming

    async def complete(self, body: dict[str, Any]) -> Completion:
        body = self._pruned(body)
        loaded, prompt, specs = await self._start(body)
        choices = [_Choice() for _ in specs]
        async for delta in self._engine.generate(loaded, specs):
            _raise_on_error(delta, self.name)
            c = choices[delta.index]
            c.text.append(delta.text)
            c.logprobs.extend(lp.as_openai() for lp in delta.logprobs)
            c.tokens = delta.completion_tokens
            if delta.finish_reason:
                c.finish_reason = delta.finish_reason
        tools = bool(chat_format.active_tools(body))
        out_choices = []
        for i, c in enumerate(choices):
            message, finish = _message("".join(c.text), c.finish_reason, tools)
            out_choices.append(
                {
                    "index": i,
                    "message": message,
                    "finish_reason": finish,
                    "logprobs": {"content": c.logprobs, "refusal": None} if body.get("logprobs") else None,
                }
            )
        completion_tokens = sum(c.tokens for c in choices)
        data = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": out_choices,
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": completion_tokens,
                "total_tokens": len(prompt) + completion_tokens,
            },
        }
        return Completion(data=as_function_call(data) if asked_for_functions(body) else data)

    # ------------------------------------------------------------------ streaming

    async def open_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        body = self._pruned(body)
        loaded, prompt, specs = await self._start(body)
        chunks = self._chunks(body, loaded, prompt, specs)
        return legacy_chunks(chunks) if asked_for_functions(body) else chunks

    async def _chunks(
        self, body: dict[str, Any], loaded: LoadedModel, prompt: list[int], specs: list[SequenceSpec]
    ) -> AsyncIterator[dict[str, Any]]:
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        tools = bool(chat_format.active_tools(body))
        held: dict[int, list[str]] = {s.index: [] for s in specs}
        tokens: dict[int, int] = {}

        def chunk(
            index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
        ) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.name,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": logprobs}],
            }

        for s in specs:
            yield chunk(s.index, {"role": "assistant", "content": ""})
        generation = self._engine.generate(loaded, specs)
        try:
            async for d in generation:
                _raise_on_error(d, self.name)
                tokens[d.index] = d.completion_tokens
                logprobs = (
                    {"content": [lp.as_openai() for lp in d.logprobs], "refusal": None}
                    if d.logprobs
                    else None
                )
                if tools:
                    held[d.index].append(d.text)
                elif d.text or logprobs:
                    yield chunk(d.index, {"content": d.text}, logprobs=logprobs)
                if d.finish_reason is None:
                    continue
                finish: str | None = d.finish_reason
                if tools:
                    message, finish = _message("".join(held[d.index]), finish, True)
                    delta: dict[str, Any] = {}
                    if message.get("content"):
                        delta["content"] = message["content"]
                    if message.get("tool_calls"):
                        delta["tool_calls"] = [
                            {"index": k, **call} for k, call in enumerate(message["tool_calls"])
                        ]
                    if delta:
                        yield chunk(d.index, delta)
                yield chunk(d.index, {}, finish)
        finally:
            await generation.aclose()
        completion_tokens = sum(tokens.values())
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            yield {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.name,
                "choices": [],
                "usage": {
                    "prompt_tokens": len(prompt),
                    "completion_tokens": completion_tokens,
                    "total_tokens": len(prompt) + completion_tokens,
                },
            }


def _with_seed(params: SamplingParams, seed: int) -> SamplingParams:
    return replace(params, seed=seed)


def _raise_on_error(delta: Delta, name: str) -> None:
    if delta.finish_reason == "error":
        raise UpstreamUnavailable(f"{name} failed while generating: {delta.error}")


def _message(text: str, finish: str | None, tools: bool) -> tuple[dict[str, Any], str | None]:
    if tools:
        content, calls = chat_format.parse_tool_calls(text)
        if calls:
            return {
                "role": "assistant",
                "content": content,
                "refusal": None,
                "tool_calls": calls,
            }, "tool_calls"
    # ``refusal`` is required (nullable) in OpenAI's response schema.
    return {"role": "assistant", "content": text, "refusal": None}, finish
