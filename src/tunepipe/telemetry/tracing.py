"""OpenTelemetry traces of gateway calls, in the GenAI semantic conventions.

One span per finished call, named ``{operation} {model}`` (``chat gpt-4o``), made by the request
logger: every call passes through it once it has ended, whatever API it came through, with its
payloads, timings and tokens, so the span is started and ended after the fact with the call's
own start and end times. Attributes follow the conventions (``gen_ai.operation.name``,
``gen_ai.provider.name`` and the older ``gen_ai.system``, request parameters, response model,
id, finish reasons, token usage; ``error.type`` and an error status on failure) plus tunepipe's
own under ``tunepipe.*`` (log id, cache hit, project id: the operator owns the trace backend).
Prompts and completions are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is true.

Traces exist only when an OTLP endpoint is configured (the standard ``OTEL_EXPORTER_OTLP_*``
variables or tunepipe's settings) or an exporter is handed in (tests): otherwise
:meth:`CallTracer.build` returns ``None`` and callers skip tracing with one ``is None`` test.
The tracer provider is the process's own, never installed globally, so that several apps in
one process (tests) keep their spans apart; spans are exported in batches off the event loop.
"""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tunepipe import __version__
from tunepipe.domain.logs import LogRecord
from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.errors import TunepipeError
from tunepipe.settings import Settings

# gen_ai.provider.name: the convention's well-known values where there is one.
_PROVIDERS = {
    RouteKind.OPENAI: "openai",
    RouteKind.ANTHROPIC: "anthropic",
    RouteKind.GEMINI: "gcp.gemini",
}
_OPERATIONS = {"embeddings": "embeddings", "completions": "text_completion"}
_REQUEST_PARAMETERS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
)


def traces_endpoint(settings: Settings) -> str | None:
    """Where spans go: the traces endpoint as given, else ``/v1/traces`` under the base one."""
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint:
        return settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    return None


def _resource() -> Resource:
    """The process as a trace backend shows it: ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` when set, else service ``tunepipe``."""
    detected = Resource.create()
    name = str(detected.attributes.get(SERVICE_NAME, ""))
    own = {"service.version": __version__}
    if not name or name.startswith("unknown_service"):
        own[SERVICE_NAME] = "tunepipe"
    return detected.merge(Resource(own))


def provider_name(model: str | None) -> str:
    if not model:
        return "unknown"
    try:
        kind = parse_model(model).kind
    except TunepipeError:
        return "unknown"
    return _PROVIDERS.get(kind, f"tunepipe.{kind.value}")


class CallTracer:
    def __init__(self, provider: TracerProvider, *, capture_content: bool) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("tunepipe", __version__)
        self._capture_content = capture_content

    @classmethod
    def build(cls, settings: Settings, exporter: SpanExporter | None = None) -> CallTracer | None:
        """A tracer exporting to the configured OTLP endpoint, or to ``exporter`` (each span as
        it ends); ``None`` when neither is there."""
        endpoint = traces_endpoint(settings)
        if exporter is None and endpoint is None:
            return None
        provider = TracerProvider(resource=_resource())
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        return cls(provider, capture_content=settings.otel_instrumentation_genai_capture_message_content)

    def record(
        self,
        record: LogRecord,
        *,
        request: Any,
        completion: Any,
        answered_by: str | None = None,
    ) -> None:
        """A span for a finished call."""
        operation = _OPERATIONS.get(record.endpoint or "", "chat")
        model = record.model or "unknown"
        attributes = _attributes(record, operation, request, completion, answered_by)
        if self._capture_content:
            attributes.update(_content(request, completion))
        span = self._tracer.start_span(
            f"{operation} {model}",
            kind=SpanKind.CLIENT,
            start_time=record.requested_at * 1_000_000,
            attributes=attributes,
        )
        status = record.status_code or 500
        if status >= 400:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, record.error_message))
        elif record.error_message:  # a stream that broke off after it began
            span.set_attribute("error.type", "stream_interrupted")
            span.set_status(Status(StatusCode.ERROR, record.error_message))
        end = record.received_at if record.received_at is not None else record.requested_at
        span.end(end_time=end * 1_000_000)

    def shutdown(self) -> None:
        """Export what is pending, then stop."""
        self._provider.shutdown()


def _attributes(
    record: LogRecord, operation: str, request: Any, completion: Any, answered_by: str | None
) -> dict[str, Any]:
    provider = provider_name(answered_by or record.model)
    out: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "tunepipe.log_id": record.id,
        "tunepipe.project_id": record.project_id,
        "tunepipe.cache_hit": record.cache_hit,
        "tunepipe.streamed": record.streamed,
        "tunepipe.source": record.source,
        "http.response.status_code": record.status_code or 500,
    }
    if record.model:
        out["gen_ai.request.model"] = record.model
    if answered_by and answered_by != record.model:
        out["tunepipe.answered_by"] = answered_by
    if record.request_id:
        out["tunepipe.request_id"] = record.request_id
    if record.endpoint:
        out["tunepipe.endpoint"] = record.endpoint
    if record.cost is not None:
        out["tunepipe.cost_usd"] = record.cost
    if record.parent_id:
        out["tunepipe.parent_log_id"] = record.parent_id
    if isinstance(request, dict):
        for field, name in _REQUEST_PARAMETERS:
            value = request.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[name] = value
    if isinstance(completion, dict):
        out.update(_response_attributes(completion))
    if record.completion_id:
        out["gen_ai.response.id"] = record.completion_id
    if record.input_tokens is not None:
        out["gen_ai.usage.input_tokens"] = record.input_tokens
    if record.output_tokens is not None:
        out["gen_ai.usage.output_tokens"] = record.output_tokens
    return out


def _response_attributes(completion: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(completion.get("model"), str):
        out["gen_ai.response.model"] = completion["model"]
    reasons = [
        c["finish_reason"]
        for c in completion.get("choices") or ()
        if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
    ]
    if reasons:
        out["gen_ai.response.finish_reasons"] = reasons
    return out


def _content(request: Any, completion: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(request, dict) and request.get("messages") is not None:
        out["gen_ai.input.messages"] = orjson.dumps(request["messages"], default=str).decode()
    if isinstance(completion, dict) and isinstance(completion.get("choices"), list):
        messages = [c.get("message") for c in completion["choices"] if isinstance(c, dict)]
        out["gen_ai.output.messages"] = orjson.dumps(messages, default=str).decode()
    return out
