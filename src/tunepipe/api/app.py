"""``create_app(settings)``: builds everything in the lifespan, tears it down in order.

Nothing happens at import time. The writer is closed after the HTTP server stops taking
requests, so every call that was answered is also logged. Once everything is built, the
garbage collector is tuned for serving (:func:`tune_gc`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tunepipe import __version__
from tunepipe.api import errors
from tunepipe.api.routes import base_models as base_models_routes
from tunepipe.api.routes import chat, dataset_jobs, datasets, logs, models, providers, system
from tunepipe.api.routes import pruning_rules as pruning_rules_routes
from tunepipe.api.state import AppState
from tunepipe.db.engine import make_engine
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.secrets import SecretBox
from tunepipe.providers.http import new_session
from tunepipe.services.auth import Authenticator
from tunepipe.services.base_models import BaseModelService
from tunepipe.services.chat import ChatService
from tunepipe.services.dataset_jobs import DatasetJobService
from tunepipe.services.datasets import DatasetService
from tunepipe.services.fine_tunes import FineTuneService
from tunepipe.services.local_models import LocalModels
from tunepipe.services.logs import LogService
from tunepipe.services.providers import ProviderService
from tunepipe.services.pruning import PruningService
from tunepipe.services.request_log import RequestLogger
from tunepipe.services.routing import Router
from tunepipe.services.training_worker import TrainingWorker
from tunepipe.settings import Settings

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/v1", "/v1")

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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.effective_database_url)
        box = SecretBox.from_settings(settings.secret_key, settings.home_dir)
        session = new_session(
            connect_timeout_s=settings.upstream_connect_timeout_s, read_timeout_s=settings.upstream_timeout_s
        )
        writer = LogWriter(
            engine,
            queue_size=settings.log_queue_size,
            batch_size=settings.log_batch_size,
            enqueue_timeout_s=settings.log_enqueue_timeout_s,
            linger_s=settings.log_linger_s,
        )
        writer.start()
        base_models = BaseModelService(engine, settings.home_dir)
        local = LocalModels(settings, base_models)
        router = Router(settings, engine, box, session, local)
        datasets_service = DatasetService(engine)
        jobs = DatasetJobService(engine, datasets_service, router, writer)
        await jobs.start()
        pruning = PruningService(engine)
        fine_tunes = FineTuneService(
            settings, engine, datasets=datasets_service, pruning=pruning, base_models=base_models, local=local
        )
        router.fine_tunes = fine_tunes
        worker = None
        if settings.worker:
            worker = TrainingWorker(settings, engine, evaluate=fine_tunes.evaluate_test_set)
            await worker.start()
        app.state.tp = AppState(
            settings=settings,
            engine=engine,
            box=box,
            session=session,
            writer=writer,
            auth=Authenticator(engine, settings.auth_cache_ttl_s),
            router=router,
            chat=ChatService(router, RequestLogger(writer)),
            logs=LogService(engine, writer),
            datasets=datasets_service,
            providers=ProviderService(engine, box, router),
            base_models=base_models,
            local=local,
            pruning=pruning,
            dataset_jobs=jobs,
            fine_tunes=fine_tunes,
        )
        tune_gc()
        try:
            yield
        finally:
            if worker is not None:
                await worker.close()
            await jobs.close()
            local.close()
            await writer.close()
            await session.close()
            engine.dispose()
            if writer.stats.dropped:
                log.error("request logs dropped during this run: %d", writer.stats.dropped)

    app = FastAPI(title="tunepipe", version=__version__, lifespan=lifespan)
    errors.install(app)
    for prefix in API_PREFIXES:
        chat.add_routes(app, prefix)
    for prefix in API_PREFIXES:
        for module in (models, logs, datasets, providers, base_models_routes):
            app.include_router(module.router, prefix=prefix)
        app.include_router(pruning_rules_routes.router, prefix=prefix)
        app.include_router(dataset_jobs.router, prefix=prefix)
    app.include_router(system.router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (multi-worker serving)."""
    return create_app(Settings())
