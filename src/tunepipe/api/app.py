"""``create_app(settings)``: builds everything in the lifespan, tears it down in order.

Nothing happens at import time. The writer is closed after the HTTP server stops taking
requests, so every call that was answered is also logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tunepipe import __version__
from tunepipe.api import errors
from tunepipe.api.routes import chat, logs, models, providers, system
from tunepipe.api.state import AppState
from tunepipe.db.engine import make_engine
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.secrets import SecretBox
from tunepipe.providers.http import new_session
from tunepipe.services.auth import Authenticator
from tunepipe.services.chat import ChatService
from tunepipe.services.logs import LogService
from tunepipe.services.providers import ProviderService
from tunepipe.services.request_log import RequestLogger
from tunepipe.services.routing import Router
from tunepipe.settings import Settings

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/v1", "/v1")


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
        )
        writer.start()
        router = Router(settings, engine, box, session)
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
            providers=ProviderService(engine, box, router),
        )
        try:
            yield
        finally:
            await writer.close()
            await session.close()
            engine.dispose()
            if writer.stats.dropped:
                log.error("request logs dropped during this run: %d", writer.stats.dropped)

    app = FastAPI(title="tunepipe", version=__version__, lifespan=lifespan)
    errors.install(app)
    for prefix in API_PREFIXES:
        for module in (chat, models, logs, providers):
            app.include_router(module.router, prefix=prefix)
    app.include_router(system.router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (multi-worker serving)."""
    return create_app(Settings())
