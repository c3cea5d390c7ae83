"""A logged call: what the log writer stores (:class:`LogRecord`), what reads return
(:class:`LoggedCall`), and how reads select (:class:`LogFilter`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunepipe.domain.criteria import CriterionResult

JUDGE_SOURCE = "judge"
"""The ``source`` of a call a criterion's judge made (its ``parent_id`` is the call it judged)."""


@dataclass(slots=True)
class LogRecord:
    """One call to log. ``request``/``response`` are JSON bytes as received, or JSON values."""

    id: str
    project_id: str
    requested_at: int
    received_at: int | None
    model: str | None
    status_code: int | None
    source: str
    request: bytes | Any = None
    response: bytes | Any = None
    error_message: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    finish_reason: str | None = None
    completion_id: str | None = None
    cache_hit: bool = False
    streamed: bool = False
    metadata: dict[str, str | None] = field(default_factory=dict)
    parent_id: str | None = None  # a judge's call: the call it judged
    criteria: list[tuple[int, CriterionResult]] = field(default_factory=list)  # (choice index, result)
    answered_by: str | None = None  # the model that answered (a fallback's) when not the one asked
    attempts: list[dict[str, Any]] = field(default_factory=list)  # every try, when there was more than one
    request_id: str | None = None  # the x-request-id it was answered with
    endpoint: str | None = None  # the API it came through, when not chat completions


@dataclass(frozen=True, slots=True)
class LogFilter:
    since_ms: int | None = None
    until_ms: int | None = None
    model: str | None = None
    status_code: int | None = None
    completion_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    contains: str | None = None
    only_success: bool = False
    criteria: dict[str, str] = field(default_factory=dict)  # criterion name -> pass | fail | error
    source: str | None = None
    parent_id: str | None = None
    judges: bool = True  # whether judges' calls are included (imports and "latest" leave them out)


@dataclass(frozen=True, slots=True)
class LoggedCall:
    id: str
    requested_at: int
    received_at: int | None
    duration_ms: int | None
    model: str | None
    status_code: int | None
    error_message: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    finish_reason: str | None
    completion_id: str | None
    cache_hit: bool
    source: str
    streamed: bool
    metadata: dict[str, str | None]
    request: Any = None
    response: Any = None
    parent_id: str | None = None
    criteria: dict[int, dict[str, Any]] = field(default_factory=dict)  # choice -> name -> result
    answered_by: str | None = None
    attempt_count: int | None = None
    attempts: list[dict[str, Any]] | None = None
    request_id: str | None = None
    endpoint: str | None = None
