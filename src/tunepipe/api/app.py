"""``create_app(settings)``: builds everything in the lifespan, tears it down in order.

Nothing happens at import time. The object graph comes from the composition root
(:class:`~tunepipe.services.container.Container`); the job worker runs beside the server unless
``TUNEPIPE_WORKER=false``. The worker stops first and the log writer last, after the HTTP server
stops taking requests, so every call that was answered is also logged. Once everything is built,
the garbage collector is tuned for serving (:func:`tune_gc`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from tunepipe import __version__
from tunepipe.api import errors, middleware, openapi
from tunepipe.api.routes import (
    base_models,
    cache,
    chat,
    completions,
    criteria,
    datasets,
    embeddings,
    evals,
    jobs,
    keys,
    logs,
    messages,
    moa,
    models,
    projects,
    providers,
    pruning_rules,
    responses,
    routing,
    system,
)
from tunepipe.jobs.kinds import build_worker
from tunepipe.services.container import Container
from tunepipe.settings import Settings
from tunepipe.telemetry import metrics
from tunepipe.web.app import install as install_web

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/v1", "/v1")
DESCRIPTION = (
    "A self-hosted, OpenPipe-compatible LLM gateway. Every path is served under `/api/v1` "
    "(OpenPipe's base URL) and `/v1` (OpenAI's); authenticate with a project key as a bearer token."
)

# Allocations between two young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path.

    The hundreds of thousands of objects that imports and startup leave behind (FastAPI,
    pydantic, SQLAlchemy) are long-lived, yet every full collection walked them all: under load
    that was a pause every few seconds, the 100-250 ms p99 of a proxied call, and a quarter of
    its CPU (docs/performance.md). Freezing them moves them out of the collector's sight (they
    are still freed by reference counting), and a higher young threshold stops objects of calls
    in flight from being promoted after a few hundred allocations. Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def create_app(settings: Settings | None = None, *, span_exporter: SpanExporter | None = None) -> FastAPI:
    """The app; ``span_exporter`` receives the traces of model calls (whatever the settings)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Container.open(settings, span_exporter=span_exporter) as container:
            worker = build_worker(container) if settings.worker else None
            if worker is not None:
                await worker.start()
            app.state.tp = container
            tune_gc()
            try:
                yield
            finally:
                if worker is not None:
                    await worker.close()
                metrics.process_exited()

    app = FastAPI(
        title="tunepipe",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by `openapi.install`
        redoc_url=None,
    )
    errors.install(app)
    middleware.install(app, settings)
    for prefix in API_PREFIXES:
        chat.add_routes(app, prefix)
        responses.add_routes(app, prefix)
        messages.add_routes(app, prefix)
        embeddings.add_routes(app, prefix)
        completions.add_routes(app, prefix)
    for prefix in API_PREFIXES:
        for module in (
            models,
            logs,
            datasets,
            jobs,
            providers,
            base_models,
            pruning_rules,
            criteria,
            evals,
            cache,
            keys,
            moa,
            routing,
            projects,
        ):
            app.include_router(module.router, prefix=prefix)
    app.include_router(system.router)
    openapi.install(app, API_PREFIXES)
    install_web(app)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (multi-worker serving)."""
    return create_app(Settings())
