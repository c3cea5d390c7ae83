"""Mixture of agents as a provider: candidates, a critique, then the synthesis, behind the one
:class:`~tunepipe.providers.base.ChatProvider` protocol so the chat pipeline, relabeling and
evaluations call it like any model.

It is handed its models already routed (:class:`Agent`: a provider, a price, whether it takes
``n``) and never looks anything up. A round asks every proposer for its candidates at once: one
call with ``n`` where the route supports it (topped up with single calls if the upstream
returned fewer), parallel single calls otherwise. A failed proposer call costs only its
candidates; a round with no candidate at all fails the request with the last error. The
critique and the synthesis are the aggregator's; a stream runs the rounds and the critique
first, then relays the synthesis chunk by chunk.

The answer is the synthesis, with ``usage`` summed over every call, the total cost (each call
priced at its own model's price) in :attr:`Completion.cost`, and each call recorded in a
top-level ``moa`` object ``{"stages": [...], "cost": ...}``: OpenAI clients ignore fields they
do not know, and the log keeps the completion whole. A stream carries the same in its last,
usage-only chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunepipe.domain.completions import Completion
from tunepipe.domain.moa import MoaConfig, critique_messages, render_answer, synthesis_messages
from tunepipe.domain.pricing import Price
from tunepipe.errors import InvalidRequest, TunepipeError, UpstreamUnavailable
from tunepipe.providers.base import ChatProvider

# What the intermediate calls do without: streaming (only the synthesis streams), the caller's
# choice count (candidates have their own), a fixed seed (parallel candidates would be one
# answer thrice) and logprobs (nobody reads them).
_NOT_FOR_CANDIDATES = ("stream", "stream_options", "n", "seed", "logprobs", "top_logprobs")


@dataclass(frozen=True, slots=True)
class Agent:
    """One model of a mixture, routed for the caller's project."""

    model: str  # as configured; what the stages show
    upstream: str  # the provider's own name for it (the body's ``model``)
    provider: ChatProvider
    price: Price | None
    supports_n: bool


def _usage(data: dict[str, Any] | None) -> tuple[int, int] | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (prompt if isinstance(prompt, int) else 0, output if isinstance(output, int) else 0)


def _answers(data: dict[str, Any]) -> list[str]:
    return [
        render_answer(choice.get("message") or {})
        for choice in data.get("choices") or []
        if isinstance(choice, dict)
    ]


@dataclass(slots=True)
class _Tally:
    """Every call of one request: its stage records, summed tokens and cost."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    def record(
        self,
        kind: str,
        agent: Agent,
        started: float,
        data: dict[str, Any] | None,
        *,
        layer: int | None = None,
        outputs: list[str] | None = None,
        error: TunepipeError | None = None,
    ) -> None:
        stage: dict[str, Any] = {"kind": kind, "model": agent.model}
        if layer is not None:
            stage["layer"] = layer
        stage["latency_ms"] = int((time.monotonic() - started) * 1000)
        counted = _usage(data)
        if counted is not None:
            prompt, output = counted
            self.prompt_tokens += prompt
            self.completion_tokens += output
            stage["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": output,
                "total_tokens": prompt + output,
            }
            if agent.price is not None:
                stage["cost"] = agent.price.cost(prompt, output)
                self.cost = (self.cost or 0.0) + stage["cost"]
        if outputs is not None:
            stage["outputs"] = outputs
        if error is not None:
            stage["status"], stage["error"] = error.status_code, error.message
        self.stages.append(stage)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def report(self) -> dict[str, Any]:
        return {"stages": self.stages, "cost": self.cost}


@dataclass(slots=True)
class _Round:
    answers: list[str] = field(default_factory=list)
    errors: list[TunepipeError] = field(default_factory=list)


class MoaProvider:
    """``config`` run over ``proposers`` (one :class:`Agent` per ``config.proposers`` entry) and
    ``aggregator``; ``name`` is the model the answer says it came from (``moa:gpt-4o``)."""

    def __init__(
        self, config: MoaConfig, proposers: Sequence[Agent], aggregator: Agent, *, name: str
    ) -> None:
        self.config = config
        self._proposers = list(proposers)
        self._aggregator = aggregator
        self.name = name

    async def complete(self, body: dict[str, Any]) -> Completion:
        tally = _Tally()
        answers, critique = await self._prepare(tally, body)
        agent = self._aggregator
        started = time.monotonic()
        result = await agent.provider.complete(self._synthesis_body(body, answers, critique, stream=False))
        tally.record("synthesis", agent, started, result.data)
        data = dict(result.data)
        data["model"] = self.name
        data["usage"] = tally.usage()
        data["moa"] = tally.report()
        return Completion(data=data, headers=result.headers, cost=tally.cost)

    async def open_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        tally = _Tally()
        answers, critique = await self._prepare(tally, body)
        started = time.monotonic()
        synthesis = self._synthesis_body(body, answers, critique, stream=True)
        chunks = await self._aggregator.provider.open_stream(synthesis)
        return self._relay(tally, chunks, started)

    async def _relay(
        self, tally: _Tally, chunks: AsyncIterator[dict[str, Any]], started: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The synthesis's chunks, renamed; its own usage replaced by one last chunk with the
        total and the stages."""
        usage: dict[str, Any] | None = None
        last: dict[str, Any] = {}
        try:
            async for chunk in chunks:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                    if not chunk.get("choices"):
                        continue
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
                chunk["model"] = self.name
                last = chunk
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        tally.record("synthesis", self._aggregator, started, {"usage": usage})
        yield {
            "id": last.get("id"),
            "object": "chat.completion.chunk",
            "created": last.get("created"),
            "model": self.name,
            "choices": [],
            "usage": tally.usage(),
            "moa": tally.report(),
        }

    # ------------------------------------------------------------ the stages before the answer

    async def _prepare(self, tally: _Tally, body: dict[str, Any]) -> tuple[list[str], str]:
        """Every round of proposals, then the critique of the last round's answers."""
        n = body.get("n")
        if isinstance(n, int) and n > 1 and not self._aggregator.supports_n:
            # Refused before any call is paid for, not by the synthesis after all the others.
            raise InvalidRequest(f"`{self._aggregator.model}` cannot give n > 1 answers", param="n")
        messages = list(body.get("messages") or [])
        answers: list[str] = []
        for layer in range(1, self.config.layers + 1):
            shown = (
                messages
                if layer == 1
                else synthesis_messages(messages, answers, prompt=self.config.synthesis_prompt)
            )
            rounds = await asyncio.gather(
                *(self._propose(tally, a, body, shown, layer) for a in self._proposers)
            )
            found = [answer for r in rounds for answer in r.answers]
            if not found:
                errors = [e for r in rounds for e in r.errors]
                raise errors[-1] if errors else UpstreamUnavailable("No proposer returned a candidate")
            answers = found
        return answers, await self._critique(tally, body, answers)

    async def _propose(
        self, tally: _Tally, agent: Agent, body: dict[str, Any], messages: list[dict[str, Any]], layer: int
    ) -> _Round:
        """``agent``'s candidates for one round; its failures are kept, not raised."""
        out = _Round()
        want = self.config.candidates
        base = {k: v for k, v in body.items() if k not in _NOT_FOR_CANDIDATES}
        base.update(model=agent.upstream, messages=messages, temperature=self.config.temperature)

        async def ask(n: int) -> None:
            request = {**base, "n": n} if n > 1 else base
            started = time.monotonic()
            try:
                data = (await agent.provider.complete(request)).data
            except TunepipeError as exc:
                tally.record("candidates", agent, started, None, layer=layer, error=exc)
                out.errors.append(exc)
                return
            answers = _answers(data)[:n]
            tally.record("candidates", agent, started, data, layer=layer, outputs=answers)
            out.answers.extend(answers)

        if agent.supports_n and want > 1:
            await ask(want)
            if out.errors or len(out.answers) >= want:
                return out  # a failed call is not retried here: that is the pipeline's call
        # No `n` here, or an upstream that ignored it: the missing candidates one call each.
        await asyncio.gather(*(ask(1) for _ in range(want - len(out.answers))))
        return out

    async def _critique(self, tally: _Tally, body: dict[str, Any], answers: list[str]) -> str:
        agent = self._aggregator
        request = {
            "model": agent.upstream,
            "messages": critique_messages(body, answers, self.config.critique_prompt),
        }
        started = time.monotonic()
        data = (await agent.provider.complete(request)).data
        critique = "\n\n".join(_answers(data)[:1])
        tally.record("critique", agent, started, data, outputs=[critique])
        return critique

    def _synthesis_body(
        self, body: dict[str, Any], answers: list[str], critique: str, *, stream: bool
    ) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        out["model"] = self._aggregator.upstream
        out["messages"] = synthesis_messages(
            list(body.get("messages") or []), answers, critique=critique, prompt=self.config.synthesis_prompt
        )
        if stream:
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}
        return out
