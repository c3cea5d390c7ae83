"""``/completions`` (the legacy, plain-prompt API): relayed to OpenAI or an external
OpenAI-compatible provider, or generated in-process from the prompt's tokens by a local causal
model (``local:<name>``, through the same engine as local chat).

Streams are forwarded chunk by chunk and assembled on the side for the log, as for chat; usage
is always asked of the upstream (so a streamed call is logged with tokens and cost) and passed
on only to a caller who asked for it. Local models take the sampling parameters they take for
chat; ``echo``, ``suffix``, ``logprobs`` and ``best_of`` are refused with a 400 there.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.engine.types import SamplingParams, SequenceSpec
from tunepipe.errors import InvalidRequest, NotFound, TunepipeError, UpstreamError, UpstreamUnavailable
from tunepipe.protocol.completions import CompletionRequest, TextAssembler
from tunepipe.services.gateway.chat import StreamEvent, StreamFailed
from tunepipe.services.gateway.endpoints import Answer, Events, forwarded, unsupported, upstream
from tunepipe.services.gateway.limits import RateLimits, Ticket
from tunepipe.services.gateway.requests import CLIENT_CLOSED_REQUEST, log_unanswered, read_call
from tunepipe.services.gateway.routing import Router
from tunepipe.services.logs.recording import CallLog, RequestLogger, usage_of

log = logging.getLogger(__name__)

ENDPOINT = "completions"
DEFAULT_MAX_TOKENS = 16
"""OpenAI's default for ``max_tokens`` on this endpoint."""


def _tokens(completion: dict[str, Any]) -> int:
    prompt, output = usage_of(completion)
    return (prompt or 0) + (output or 0)


@dataclass(slots=True)
class _Generation:
    """A local call, ready to run: the engine, the model and the sequences to decode."""

    engine: Any
    loaded: Any
    specs: list[SequenceSpec]
    prompt_tokens: int
    cid: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


class CompletionsService:
    def __init__(self, router: Router, logger: RequestLogger, limits: RateLimits) -> None:
        self._router = router
        self._logger = logger
        self._limits = limits

    async def create(self, principal: Principal, raw: bytes, headers: Mapping[str, str]) -> Answer | Events:
        call, body, request, _ = await read_call(
            self._logger, principal, raw, headers, CompletionRequest, endpoint=ENDPOINT
        )
        ticket: Ticket | None = None
        try:
            ticket = await self._limits.admit(principal)
            ref = parse_model(request.model)
            if ref.kind is RouteKind.LOCAL:
                gen = await self._local(ref.name, request)
                if request.stream:
                    chunks = self._local_chunks(request.model, gen)
                else:
                    answer, own = await self._local_answer(request.model, gen), None
            else:
                route, provider = await upstream(self._router, principal, ref, request.model, ENDPOINT)
                call.price = route.price
                out = forwarded(body, route)
                if request.stream:
                    options = dict(out.get("stream_options") or {})
                    options["include_usage"] = True
                    out["stream_options"] = options
                    chunks = await provider.open_events(ENDPOINT, out)
                else:
                    answer, own = await provider.post(ENDPOINT, out)
                    if not isinstance(answer.get("choices"), list):
                        raise UpstreamUnavailable(f"{provider.name} returned a body that is not a completion")
        except BaseException as exc:  # a cancellation too: the client hung up (logged as 499)
            await self._limits.release(ticket, 0)
            await log_unanswered(self._logger, call, exc, streamed=bool(request.stream))
            raise
        out_headers = dict(ticket.headers) if ticket else {}
        if request.stream:
            asked = bool(request.stream_options and request.stream_options.include_usage)
            return Events(self._relay(call, ticket, chunks, include_usage=asked), out_headers)
        await self._limits.release(ticket, _tokens(answer))
        await self._logger.success(call, answer, raw=own)
        return Answer(own if own is not None else orjson.dumps(answer), out_headers)

    async def _relay(
        self,
        call: CallLog,
        ticket: Ticket | None,
        chunks: AsyncIterator[dict[str, Any]],
        *,
        include_usage: bool,
    ) -> AsyncIterator[StreamEvent]:
        assembler = TextAssembler()
        failure: str | None = "client disconnected before the stream ended"
        status = CLIENT_CLOSED_REQUEST
        try:
            async for chunk in chunks:
                assembler.feed(chunk)
                if not include_usage:
                    if not chunk.get("choices") and chunk.get("usage"):
                        continue
                    chunk.pop("usage", None)
                yield chunk
            failure, status = None, 200
        except UpstreamError as exc:
            failure, status = f"{call.model} broke off: {exc.message}", exc.status_code
            yield StreamFailed(exc)
        except Exception as exc:
            log.exception("completions stream relay failed")
            failure, status = f"stream failed: {exc.__class__.__name__}", 500
            yield StreamFailed(TunepipeError(failure))
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            completion = assembler.completion()
            await self._limits.release(ticket, _tokens(completion))
            await self._logger.success(
                call, completion, streamed=True, error_message=failure, status_code=status
            )

    # ------------------------------------------------------------------ local causal models

    async def _local(self, name: str, request: CompletionRequest) -> _Generation:
        for unsupported_field in ("echo", "suffix", "logprobs"):
            if getattr(request, unsupported_field):
                raise InvalidRequest(
                    f"`{unsupported_field}` is not supported by local models", param=unsupported_field
                )
        if request.best_of is not None and request.best_of > (request.n or 1):
            raise InvalidRequest("`best_of` is not supported by local models", param="best_of")
        local = self._router.local
        model = await local.find(name)
        if model is None:
            raise NotFound(f"The model `local:{name}` does not exist", param="model", code="model_not_found")
        adapter = None
        if model.kind == "lora":
            base = await local.find(model.base or "")
            if base is None:
                raise NotFound(f"The base model {model.base!r} of `local:{name}` is not registered")
            adapter, model = (name, Path(model.path)), base
        from tunepipe.engine.embeddings import is_embedding_dir

        if is_embedding_dir(Path(model.path)):
            raise unsupported(request.model, "an embedding model", ENDPOINT)
        engine = local.engine()
        loaded = await engine.model(model.name, Path(model.path), adapter)
        prompts = request.prompts()
        if isinstance(prompts[0], str):
            ids: list[list[int]] = [
                loaded.tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts
            ]
        else:
            ids = [list(p) for p in prompts]
        vocab = loaded.vocab_size
        specs = []
        n = request.n or 1
        for p, prompt in enumerate(ids):
            if not prompt:
                raise InvalidRequest(f"Prompt {p} is empty", param="prompt")
            if any(not 0 <= t < vocab for t in prompt):
                raise InvalidRequest(
                    f"Prompt {p} has token ids outside this model's vocabulary", param="prompt"
                )
            room = (loaded.max_positions or 1_000_000) - len(prompt)
            if room <= 0:
                raise InvalidRequest(
                    f"Prompt {p} has {len(prompt)} tokens; this model's context holds {loaded.max_positions}",
                    param="prompt",
                )
            for i in range(n):
                specs.append(
                    SequenceSpec(
                        index=p * n + i,
                        prompt_ids=prompt,
                        params=_params(request, room, i),
                        adapter=adapter[0] if adapter else None,
                    )
                )
        return _Generation(engine, loaded, specs, prompt_tokens=sum(len(p) for p in ids))

    async def _local_answer(self, model: str, gen: _Generation) -> dict[str, Any]:
        texts: dict[int, list[str]] = {s.index: [] for s in gen.specs}
        finish: dict[int, str | None] = {}
        tokens: dict[int, int] = {}
        async for delta in gen.engine.generate(gen.loaded, gen.specs):
            _raise_on_error(delta, model)
            texts[delta.index].append(delta.text)
            tokens[delta.index] = delta.completion_tokens
            if delta.finish_reason:
                finish[delta.index] = delta.finish_reason
        completion_tokens = sum(tokens.values())
        return {
            "id": gen.cid,
            "object": "text_completion",
            "created": gen.created,
            "model": model,
            "choices": [
                {"index": i, "text": "".join(texts[i]), "finish_reason": finish.get(i), "logprobs": None}
                for i in sorted(texts)
            ],
            "usage": _usage(gen.prompt_tokens, completion_tokens),
        }

    async def _local_chunks(self, model: str, gen: _Generation) -> AsyncIterator[dict[str, Any]]:
        def chunk(index: int, text: str, finish: str | None) -> dict[str, Any]:
            return {
                "id": gen.cid,
                "object": "text_completion",
                "created": gen.created,
                "model": model,
                "choices": [{"index": index, "text": text, "finish_reason": finish, "logprobs": None}],
            }

        tokens: dict[int, int] = {}
        generation = gen.engine.generate(gen.loaded, gen.specs)
        try:
            async for delta in generation:
                _raise_on_error(delta, model)
                tokens[delta.index] = delta.completion_tokens
                if delta.text or delta.finish_reason:
                    yield chunk(delta.index, delta.text, delta.finish_reason)
        finally:
            await generation.aclose()
        yield {
            "id": gen.cid,
            "object": "text_completion",
            "created": gen.created,
            "model": model,
            "choices": [],
            "usage": _usage(gen.prompt_tokens, sum(tokens.values())),
        }


def _params(request: CompletionRequest, room: int, choice: int) -> SamplingParams:
    stop = request.stop
    asked = DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
    return SamplingParams(
        temperature=request.temperature if request.temperature is not None else 1.0,
        top_p=request.top_p if request.top_p is not None else 1.0,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        max_tokens=max(1, min(asked, room)),
        stop=((stop,) if isinstance(stop, str) else tuple(stop or ())),
        seed=None if request.seed is None else request.seed + choice,
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _raise_on_error(delta: Any, model: str) -> None:
    if delta.finish_reason == "error":
        raise UpstreamUnavailable(f"{model} failed while generating: {delta.error}")
