"""Turn a finished call into a log record and hand it to the writer.

Everything about a logged call that can be derived from its payloads (tokens, cost, finish
reason, completion id, duration) is derived here, the same way for proxied, streamed and
reported calls.

Every call the gateway finishes passes through :class:`RequestLogger`, logged or not
(``op-log-request: false``), so it is also where a call is counted (Prometheus) and traced
(OpenTelemetry): any API built on the pipeline gets both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tunepipe.db.log_writer import LogWriter
from tunepipe.domain.clock import now_ms
from tunepipe.domain.criteria import CriterionResult
from tunepipe.domain.ids import uuid7
from tunepipe.domain.logs import LogRecord
from tunepipe.domain.pricing import Price
from tunepipe.domain.routing import Attempt
from tunepipe.errors import TunepipeError
from tunepipe.telemetry.metrics import observe_call
from tunepipe.telemetry.tracing import CallTracer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CallLog:
    """What the chat pipeline knows about a call before it finishes."""

    project_id: str
    requested_at: int
    model: str | None
    request: bytes | Any
    enabled: bool
    metadata: dict[str, str | None] = field(default_factory=dict)
    price: Price | None = None
    # Known before the call ends, so that the calls of its criteria's judges can point at it.
    id: str = field(default_factory=uuid7)
    source: str = "proxy"
    parent_id: str | None = None
    criteria: list[tuple[int, CriterionResult]] = field(default_factory=list)
    cache_hit: bool = False
    answered_by: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    request_id: str | None = None  # the x-request-id the call is answered with
    endpoint: str | None = None  # responses | messages | embeddings | completions (None: chat)

    def tries(self) -> tuple[str | None, list[dict[str, Any]]]:
        """What the log keeps of the tries: the answering model and every try, only when there
        was more than one (a plain call stays a narrow row)."""
        if len(self.attempts) <= 1 and self.answered_by in (None, self.model):
            return None, []
        return self.answered_by, [a.as_dict() for a in self.attempts]


def usage_of(completion: Any) -> tuple[int | None, int | None]:
    usage = completion.get("usage") if isinstance(completion, dict) else None
    if not isinstance(usage, dict):
        return None, None
    prompt, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else None,
        completion_tokens if isinstance(completion_tokens, int) else None,
    )


def cost_of(price: Price | None, completion: Any) -> float:
    """What a completion cost at ``price`` (0 when either is unknown)."""
    prompt, output = usage_of(completion)
    if price is None or prompt is None or output is None:
        return 0.0
    return price.cost(prompt, output)


def finish_reason_of(completion: Any) -> str | None:
    if isinstance(completion, dict):
        choices = completion.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            reason = choices[0].get("finish_reason")
            return reason if isinstance(reason, str) else None
    return None


def completion_id_of(completion: Any) -> str | None:
    if isinstance(completion, dict) and isinstance(completion.get("id"), str):
        return str(completion["id"])
    return None


def build_record(
    *,
    project_id: str,
    requested_at: int,
    received_at: int | None,
    model: str | None,
    status_code: int | None,
    source: str,
    request: bytes | Any,
    response: bytes | Any,
    parsed_response: Any = None,
    error_message: str | None = None,
    metadata: dict[str, str | None] | None = None,
    price: Price | None = None,
    streamed: bool = False,
    cache_hit: bool = False,
    record_id: str | None = None,
    parent_id: str | None = None,
    criteria: list[tuple[int, CriterionResult]] | None = None,
    cost_override: float | None = None,
    tries: tuple[str | None, list[dict[str, Any]]] = (None, []),
    request_id: str | None = None,
    endpoint: str | None = None,
) -> LogRecord:
    parsed = (
        parsed_response
        if parsed_response is not None
        else (None if isinstance(response, bytes) else response)
    )
    input_tokens, output_tokens = usage_of(parsed)
    cost = None
    if cache_hit:
        cost = 0.0
    elif price is not None and input_tokens is not None and output_tokens is not None:
        cost = price.cost(input_tokens, output_tokens)
    if cost_override is not None and not cache_hit:
        cost = cost_override
    return LogRecord(
        id=record_id or uuid7(),
        project_id=project_id,
        requested_at=requested_at,
        received_at=received_at,
        model=model,
        status_code=status_code,
        source=source,
        request=request,
        response=response,
        error_message=error_message,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=cost,
        finish_reason=finish_reason_of(parsed),
        completion_id=completion_id_of(parsed),
        cache_hit=cache_hit,
        streamed=streamed,
        metadata=dict(metadata or {}),
        parent_id=parent_id,
        criteria=list(criteria or []),
        answered_by=tries[0],
        attempts=tries[1],
        request_id=request_id,
        endpoint=endpoint,
    )


class RequestLogger:
    def __init__(self, writer: LogWriter, tracer: CallTracer | None = None) -> None:
        self._writer = writer
        self._tracer = tracer

    async def _finished(self, call: CallLog, record: LogRecord, completion: Any) -> None:
        observe_call(record)
        if self._tracer is not None:
            try:
                self._tracer.record(
                    record, request=call.request, completion=completion, answered_by=call.answered_by
                )
            except Exception:  # a trace must never cost the call its log
                log.exception("tracing a call failed")
        if call.enabled:
            await self._writer.submit(record)

    async def success(
        self,
        call: CallLog,
        completion: dict[str, Any],
        *,
        raw: bytes | None = None,
        streamed: bool = False,
        error_message: str | None = None,
        status_code: int = 200,
        cost: float | None = None,
    ) -> None:
        """Log a completion; a stream that broke off is logged with what arrived, the error and
        its status (499 when the client went away)."""
        record = build_record(
            project_id=call.project_id,
            requested_at=call.requested_at,
            received_at=now_ms(),
            model=call.model,
            status_code=status_code,
            source=call.source,
            request=call.request,
            response=raw if raw is not None else completion,
            parsed_response=completion,
            error_message=error_message,
            metadata=call.metadata,
            price=call.price,
            streamed=streamed,
            record_id=call.id,
            parent_id=call.parent_id,
            criteria=call.criteria,
            cache_hit=call.cache_hit,
            cost_override=cost,
            tries=call.tries(),
            request_id=call.request_id,
            endpoint=call.endpoint,
        )
        await self._finished(call, record, completion)

    async def failure(self, call: CallLog, error: TunepipeError, *, streamed: bool = False) -> None:
        record = build_record(
            project_id=call.project_id,
            requested_at=call.requested_at,
            received_at=now_ms(),
            model=call.model,
            status_code=error.status_code,
            source=call.source,
            request=call.request,
            response=error.envelope(),
            error_message=error.message,
            metadata=call.metadata,
            streamed=streamed,
            record_id=call.id,
            parent_id=call.parent_id,
            tries=call.tries(),
            request_id=call.request_id,
            endpoint=call.endpoint,
        )
        await self._finished(call, record, None)
