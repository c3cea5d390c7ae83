"""OpenTelemetry traces of model calls: one ``chat {model}`` span per call with the GenAI
semantic-convention attributes, exported to an OTLP endpoint when one is configured, and no
tracing at all when none is."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conftest import FakeProvider, free_port
from tunepipe.api.app import create_app
from tunepipe.db.projects import ensure_default_project
from tunepipe.services.container import open_database
from tunepipe.settings import Settings
from tunepipe.telemetry.tracing import CallTracer

KEY = "opk_" + "t" * 42


@dataclass
class Served:
    root: str
    app: Any

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.root}/api/v1", api_key=KEY, max_retries=0)

    def logged(self, marker: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {KEY}"}
        deadline = time.monotonic() + 10
        while True:
            r = httpx.get(f"{self.root}/api/v1/logs", params={"contains": marker}, headers=headers)
            assert r.status_code == 200, r.text
            if r.json()["data"]:
                return dict(r.json()["data"][0])
            assert time.monotonic() < deadline, f"no call mentioning {marker} was logged"
            time.sleep(0.05)


def settings_for(home: Path, fake: FakeProvider, **extra: Any) -> Settings:
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'tracing.db'}",
        api_key=KEY,
        openai_base_url=f"{fake.url}/v1",
        openai_api_key="sk-fake-openai",
        worker=False,
        default_model=False,
        **extra,
    )


@contextmanager
def serve(settings: Settings, exporter: InMemorySpanExporter | None = None) -> Iterator[Served]:
    """The app on a loopback port, in a thread of this process (so the test can read its spans)."""
    db = open_database(settings, migrate=True)
    db.run_sync(ensure_default_project, settings.api_key)
    db.dispose()
    app = create_app(settings, span_exporter=exporter)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def traced(
    fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    settings = settings_for(tmp_path_factory.mktemp("traced"), fake_provider)
    with serve(settings, exporter) as served:
        yield served, exporter


def span_for(exporter: InMemorySpanExporter, log_id: str) -> ReadableSpan:
    found = [
        s for s in exporter.get_finished_spans() if (s.attributes or {}).get("tunepipe.log_id") == log_id
    ]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def test_tracing_completion_span_has_gen_ai_attributes(traced: tuple[Served, InMemorySpanExporter]) -> None:
    served, exporter = traced
    marker = uuid.uuid4().hex
    with served.client() as client:
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": marker}],
            temperature=0.25,
            top_p=0.5,
            max_tokens=40,
        )
    log = served.logged(marker)
    span = span_for(exporter, log["id"])
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.model"] == completion.model
    assert attrs["gen_ai.request.temperature"] == 0.25
    assert attrs["gen_ai.request.top_p"] == 0.5
    assert attrs["gen_ai.request.max_tokens"] == 40
    assert completion.usage is not None
    assert attrs["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert attrs["gen_ai.response.id"] == completion.id
    assert attrs["gen_ai.response.finish_reasons"] == (completion.choices[0].finish_reason,)
    assert attrs["tunepipe.cache_hit"] is False
    assert attrs["tunepipe.request_id"] == log["requestId"]
    assert isinstance(attrs["tunepipe.project_id"], str) and attrs["tunepipe.project_id"]
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert marker not in str(attrs)  # no content unless asked for
    # The span covers the call as logged.
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time == log["requestedAt"] * 1_000_000
    assert span.end_time == log["receivedAt"] * 1_000_000


def test_tracing_cache_hit_marked(traced: tuple[Served, InMemorySpanExporter]) -> None:
    served, exporter = traced
    marker = uuid.uuid4().hex
    with served.client() as client:
        for _ in range(2):
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": marker}],
                extra_headers={"op-cache": "readWrite"},
            )
    headers = {"Authorization": f"Bearer {KEY}"}
    deadline = time.monotonic() + 10
    while True:
        calls = httpx.get(f"{served.root}/api/v1/logs", params={"contains": marker}, headers=headers).json()[
            "data"
        ]
        if len(calls) == 2:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    hits = {call["id"]: call["cacheHit"] for call in calls}
    for log_id, hit in hits.items():
        assert span_for(exporter, log_id).attributes["tunepipe.cache_hit"] is hit  # type: ignore[index]
    assert sorted(hits.values()) == [False, True]


def test_tracing_stream_span(traced: tuple[Served, InMemorySpanExporter]) -> None:
    served, exporter = traced
    marker = uuid.uuid4().hex
    with served.client() as client:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": marker}], stream=True
            )
        )
    assert chunks
    log = served.logged(marker)
    span = span_for(exporter, log["id"])
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini"
    assert attrs["tunepipe.streamed"] is True
    assert attrs["gen_ai.usage.input_tokens"] == log["inputTokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] == log["outputTokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.response.id"] == chunks[0].id
    assert span.status.status_code is StatusCode.UNSET


def test_tracing_failure_span_has_error_status(traced: tuple[Served, InMemorySpanExporter]) -> None:
    served, exporter = traced
    marker = uuid.uuid4().hex
    with served.client() as client, pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model="fail-503",
            messages=[{"role": "user", "content": marker}],
            extra_headers={"op-retries": "0"},
        )
    log = served.logged(marker)
    span = span_for(exporter, log["id"])
    attrs = dict(span.attributes or {})
    assert span.name == "chat fail-503"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == log["errorMessage"]
    assert attrs["error.type"] == str(failed.value.status_code) == str(log["statusCode"])
    assert attrs["gen_ai.request.model"] == "fail-503"
    assert "gen_ai.usage.input_tokens" not in attrs


def test_tracing_content_captured_when_opted_in(fake_provider: FakeProvider, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    settings = settings_for(tmp_path, fake_provider, otel_instrumentation_genai_capture_message_content=True)
    marker = uuid.uuid4().hex
    with serve(settings, exporter) as served:
        with served.client() as client:
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": marker}]
            )
        span = span_for(exporter, served.logged(marker)["id"])
    attrs = dict(span.attributes or {})
    assert marker in str(attrs["gen_ai.input.messages"])
    assert answer.choices[0].message.content
    assert answer.choices[0].message.content in str(attrs["gen_ai.output.messages"])


def test_tracing_off_without_endpoint(
    fake_provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"TUNEPIPE_{name}", raising=False)
    settings = settings_for(tmp_path, fake_provider)
    assert CallTracer.build(settings) is None
    with serve(settings) as served:
        with served.client() as client:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert served.app.state.tp.tracer is None
    # Nothing was installed process-wide either.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_tracing_exports_to_configured_otlp_endpoint(fake_provider: FakeProvider, tmp_path: Path) -> None:
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    collector = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        settings = settings_for(
            tmp_path, fake_provider, otel_exporter_otlp_endpoint=f"http://127.0.0.1:{collector.server_port}"
        )
        marker = uuid.uuid4().hex
        with serve(settings) as served:
            with served.client() as client:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": marker}])
            log_id = served.logged(marker)["id"]
        # Shutting down flushed the batch.
    finally:
        collector.shutdown()
    assert received and all(path == "/v1/traces" for path, _ in received)
    spans = []
    for _, body in received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert service["service.name"] == "tunepipe"
            for scope_spans in resource_spans.scope_spans:
                spans.extend(scope_spans.spans)
    [span] = [
        s
        for s in spans
        if any(a.key == "tunepipe.log_id" and a.value.string_value == log_id for a in s.attributes)
    ]
    assert span.name == "chat gpt-4o"
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["gen_ai.operation.name"].string_value == "chat"
    assert attrs["gen_ai.usage.output_tokens"].int_value > 0
