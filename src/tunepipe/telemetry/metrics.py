"""Prometheus metrics: what they are, the cheap calls that move them, and the scrape.

Metrics are module-level, as prometheus-client intends: moving one on the hot path is a dict
lookup and a locked add, and every layer that has something to count (the HTTP middleware, the
request logger, the upstream calls, the job worker) imports this module, which imports nothing
of tunepipe's above ``domain``. They live in a registry of their own, not the library's global
one, so nothing another library registers ends up in tunepipe's output.

Labels never carry a project id, an API key or an upstream URL: tenants share one installation
and its scrape. Label values a caller could choose are bounded: HTTP routes by their template
(``unmatched`` for any path no route serves), methods outside the usual set as ``other``, and
model names by :class:`ModelLabels` (the first :data:`MAX_MODEL_LABELS` models that answered,
then ``other``).

What is state rather than an event (the log queue's depth, the records it dropped, the jobs
queued and running in the database) is read when scraped, never tracked on the hot path
(:func:`render`).

With ``PROMETHEUS_MULTIPROC_DIR`` set (several server processes), prometheus-client keeps each
process's values in files there and a scrape adds them up (:class:`MultiProcessCollector`); the
values read at scrape time are then those of the process that answered the scrape.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from tunepipe.domain.logs import LogRecord

MAX_MODEL_LABELS = 100
OTHER = "other"
UNMATCHED = "unmatched"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds; LLM calls run from milliseconds (a cache hit) to minutes (a long generation).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "tunepipe_http_requests",
    "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "tunepipe_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response body (a stream's last event).",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
GATEWAY_CALLS = Counter(
    "tunepipe_gateway_calls",
    "Model calls through the gateway, by API endpoint and status class.",
    ["endpoint", "status"],
    registry=REGISTRY,
)
GATEWAY_DURATION = Histogram(
    "tunepipe_gateway_call_duration_seconds",
    "Duration of a model call through the gateway, as logged, by API endpoint.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "tunepipe_gateway_tokens",
    "Tokens the upstream processed for answered calls (cache hits not counted), by model and "
    "type (input or output).",
    ["model", "type"],
    registry=REGISTRY,
)
COST = Counter(
    "tunepipe_gateway_cost_usd",
    "What answered calls cost in US dollars at the model's price (a cache hit costs nothing).",
    ["model"],
    registry=REGISTRY,
)
CACHE_LOOKUPS = Counter(
    "tunepipe_cache_lookups",
    "Response-cache lookups by result (hit, miss; write: a writeOnly call, not looked up).",
    ["result"],
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "tunepipe_upstream_errors",
    "Failed tries of an upstream model, by provider kind and HTTP status (retries count each).",
    ["provider", "status"],
    registry=REGISTRY,
)
JOBS_RUNNING_HERE = Gauge(
    "tunepipe_worker_jobs_running",
    "Jobs this process's worker is running now, by kind.",
    ["kind"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "tunepipe_jobs_finished",
    "Jobs a worker of this installation finished, by kind and outcome (the job's new status).",
    ["kind", "outcome"],
    registry=REGISTRY,
)


class ModelLabels:
    """Model names as label values, at most ``limit`` of them per process.

    Only a call that was answered admits a new name: a caller sending made-up model names gets
    404s, and those must not use up the room that real models need.
    """

    def __init__(self, limit: int = MAX_MODEL_LABELS) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def label(self, model: str | None, *, answered: bool) -> str:
        if model is None:
            return OTHER
        if model in self._seen:
            return model
        if not answered:
            return OTHER
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(model)
        return model


MODELS = ModelLabels()


def status_class(status: int) -> str:
    return _STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else "5xx"


def method_label(method: str) -> str:
    return method if method in _METHODS else OTHER


class HttpObserver:
    """Counts requests with each label set's children kept at hand (``labels()`` validates and
    locks on every call; this lookup is a plain dict read)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            method = method_label(method)
            children = (
                HTTP_REQUESTS.labels(route, method, status_class(status)),
                HTTP_DURATION.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, kept: ``labels()`` validates and locks on every call, and a
    label set's child never changes (the label values are bounded, so is this dict)."""
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe_call(record: LogRecord) -> None:
    """Count a finished gateway call from its log record."""
    status = record.status_code or 500
    endpoint = record.endpoint or "chat_completions"
    _child(GATEWAY_CALLS, endpoint, status_class(status)).inc()
    if record.received_at is not None:
        _child(GATEWAY_DURATION, endpoint).observe(max(0, record.received_at - record.requested_at) / 1000)
    if record.cache_hit or (record.input_tokens is None and record.output_tokens is None and not record.cost):
        return  # a hit's tokens were counted when the upstream answered it
    model = MODELS.label(record.model, answered=status < 400)
    if record.input_tokens:
        _child(TOKENS, model, "input").inc(record.input_tokens)
    if record.output_tokens:
        _child(TOKENS, model, "output").inc(record.output_tokens)
    if record.cost:
        _child(COST, model).inc(record.cost)


def count_cache(result: str) -> None:
    _child(CACHE_LOOKUPS, result.lower()).inc()


def count_upstream_error(provider: str, status: int) -> None:
    _child(UPSTREAM_ERRORS, provider, str(status)).inc()


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()))


def process_exited() -> None:
    """Tell the multiprocess files this process is gone (its live gauges stop counting)."""
    if multiprocess():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State read at scrape time."""

    log_stats: Mapping[str, int]
    log_queue_depth: int
    jobs: Mapping[tuple[str, str], int]  # (kind, status) → jobs in the database


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        s = self._snapshot
        yield GaugeMetricFamily(
            "tunepipe_log_queue_depth",
            "Request-log records waiting for the writer in the process that answered the scrape.",
            value=s.log_queue_depth,
        )
        for name, help_text in (
            ("enqueued", "Request-log records queued for writing"),
            ("written", "Request-log records written to the database"),
            ("dropped", "Request-log records dropped (queue full too long, or refused by the database)"),
            ("failed_batches", "Request-log batches whose write failed (then retried or split)"),
        ):
            yield CounterMetricFamily(
                f"tunepipe_log_records_{name}" if name != "failed_batches" else "tunepipe_log_failed_batches",
                f"{help_text}, by the process that answered the scrape.",
                value=s.log_stats.get(name, 0),
            )
        jobs = GaugeMetricFamily(
            "tunepipe_jobs",
            "Jobs in the database by kind and status (queued, running).",
            labels=["kind", "status"],
        )
        for (kind, status), count in sorted(s.jobs.items()):
            jobs.add_metric([kind, status.lower()], count)
        yield jobs


def render(snapshot: Snapshot) -> bytes:
    """The scrape: every metric in the text exposition format."""
    if multiprocess():
        counted = CollectorRegistry()
        MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(_SnapshotCollector(snapshot))
    return generate_latest(counted) + generate_latest(state)
