"""Asking a judge model for a verdict: a criterion's PASS/FAIL, or which of two outputs is better.

The judge is any routable model, called through the router like any other call. The verdict is
asked for in the form the upstream honours best: a JSON-schema response (OpenAI-compatible
upstreams and the local engine, which enforces it by constrained decoding) or a forced tool call
(Anthropic). Where the upstream reports logprobs for it (OpenAI, the local engine, fine-tunes)
they are asked for, so a criterion's score is the judge's probability of a pass.

A judge's failure is a result, not an exception, for criteria (a failing judge spoils its own
criterion only); :meth:`Judge.compare` raises, and its caller records the error on its row.
When asked to, a judge's call is logged (``source: judge``, ``parent_id``: the call it judged)
with its tokens and cost, so its spend is never lost.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tunepipe.domain.clock import now_ms
from tunepipe.domain.criteria import (
    VERDICT_SCHEMA,
    VERDICT_TOOL_NAME,
    Criterion,
    CriterionResult,
    Sample,
    VerdictUnparseable,
    judge_messages,
    parse_verdict,
)
from tunepipe.domain.evals import H2H_SCHEMA, H2H_TOOL_NAME, h2h_messages, parse_h2h
from tunepipe.domain.logs import JUDGE_SOURCE
from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import TunepipeError
from tunepipe.services.gateway.routing import Route, Router
from tunepipe.services.logs.recording import CallLog, RequestLogger, cost_of

MAX_JUDGE_TOKENS = 1024
TOP_LOGPROBS = 5
UNPARSEABLE = 502
"""``errorCode`` of a judge that answered, but with no readable verdict."""

_LOGPROB_KINDS = frozenset({RouteKind.OPENAI, RouteKind.LOCAL, RouteKind.FINE_TUNE})


@dataclass(frozen=True, slots=True)
class JudgeLog:
    """Where a judge's call is logged: under the judged call, with these labels."""

    parent_id: str | None
    metadata: dict[str, str | None]


class JudgeFailed(Exception):
    """A comparison the judge could not give: the call failed, or its answer named no winner."""

    def __init__(self, message: str, cost: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.cost = cost


@dataclass(frozen=True, slots=True)
class Judged:
    result: CriterionResult
    cost: float


def verdict_request(
    route: Route, messages: list[dict[str, Any]], name: str, schema: dict[str, Any]
) -> dict[str, Any]:
    """The judge's request body, asking for ``schema`` as the upstream best supports it."""
    body: dict[str, Any] = {
        "model": route.ref.name,
        "messages": messages,
        "temperature": 0,
        "max_tokens": MAX_JUDGE_TOKENS,
    }
    if route.ref.kind is RouteKind.ANTHROPIC:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": name, "description": "Record the verdict.", "parameters": schema},
            }
        ]
        body["tool_choice"] = {"type": "function", "function": {"name": name}}
        return body
    body["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": True},
    }
    if route.ref.kind in _LOGPROB_KINDS:
        body["logprobs"] = True
        body["top_logprobs"] = TOP_LOGPROBS
    return body


class Judge:
    def __init__(self, router: Router, logger: RequestLogger, *, concurrency: int = 16) -> None:
        self._router = router
        self._logger = logger
        self._gate = asyncio.Semaphore(concurrency)

    async def ask(
        self,
        principal: Principal,
        model: str,
        messages: list[dict[str, Any]],
        *,
        name: str,
        schema: dict[str, Any],
        log: JudgeLog | None = None,
    ) -> tuple[dict[str, Any], float]:
        """One judge call: the completion and what it cost. Raises :class:`TunepipeError`."""
        route = await self._router.resolve(principal, parse_model(model))
        body = verdict_request(route, messages, name, schema)
        call = CallLog(
            project_id=principal.project.id,
            requested_at=now_ms(),
            model=model,
            request={**body, "model": model},
            enabled=log is not None and not principal.read_only,
            metadata=dict(log.metadata) if log is not None else {},
            price=route.price,
            source=JUDGE_SOURCE,
            parent_id=log.parent_id if log is not None else None,
        )
        try:
            async with self._gate:
                completion = await route.provider.complete(body)
        except TunepipeError as exc:
            await self._logger.failure(call, exc)
            raise
        await self._logger.success(call, completion.data, cost=completion.cost)
        cost = completion.cost if completion.cost is not None else cost_of(route.price, completion.data)
        return completion.data, cost

    async def criterion(
        self, principal: Principal, criterion: Criterion, sample: Sample, *, log: JudgeLog | None = None
    ) -> Judged:
        """``criterion``'s verdict on ``sample``; a failing judge gives an error result."""
        if log is not None:
            log = JudgeLog(log.parent_id, {**log.metadata, "$criterion": criterion.ref})
        cost = 0.0
        try:
            completion, cost = await self.ask(
                principal,
                criterion.judge_model,
                judge_messages(criterion, sample),
                name=VERDICT_TOOL_NAME,
                schema=VERDICT_SCHEMA,
                log=log,
            )
            verdict = parse_verdict(completion)
        except TunepipeError as exc:
            return Judged(self._error(criterion, exc.status_code, f"Judge call failed: {exc.message}"), cost)
        except VerdictUnparseable as exc:
            return Judged(self._error(criterion, UNPARSEABLE, str(exc)), cost)
        result = CriterionResult(
            criterion.name, criterion.version, "success", round(verdict.score, 6), verdict.explanation
        )
        return Judged(result, cost)

    @staticmethod
    def _error(criterion: Criterion, code: int, message: str) -> CriterionResult:
        return CriterionResult(
            criterion.name, criterion.version, "error", error_code=code, error_message=message
        )

    async def compare(
        self,
        principal: Principal,
        judge_model: str,
        instructions: str | None,
        sample_input: Sample,
        first: str,
        second: str,
    ) -> tuple[str, str | None, float]:
        """Which shown response is better: ``("1" | "2" | "tie", explanation, cost)``. Raises
        :class:`JudgeFailed` (with what the call cost, if it was made)."""
        try:
            completion, cost = await self.ask(
                principal,
                judge_model,
                h2h_messages(instructions, sample_input, first, second),
                name=H2H_TOOL_NAME,
                schema=H2H_SCHEMA,
            )
        except TunepipeError as exc:
            raise JudgeFailed(f"Judge call failed: {exc.message}") from exc
        try:
            choice, explanation = parse_h2h(completion)
        except VerdictUnparseable as exc:
            raise JudgeFailed(str(exc), cost) from exc
        return choice, explanation, cost
