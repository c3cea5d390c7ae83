"""The composition root: every long-lived object of a process, built once, in dependency order.

``tunepipe serve`` builds one in its lifespan and every CLI command builds one for its run, so
the object graph is wired in this one place. Dependencies point one way: fine-tunes are served
through :class:`~tunepipe.services.fine_tunes.serving.FineTuneServing`, which the router is
given as its :class:`~tunepipe.services.gateway.routing.FineTuneResolver`, and the fine-tune
service uses the serving half too; nothing is assigned after construction.

Building does no I/O beyond opening the database (and migrating it when asked); the upstream
HTTP sessions, the log writer's task and the settings change feed start in :meth:`Container.open`
because they need the running event loop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from opentelemetry.sdk.trace.export import SpanExporter

from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.log_writer import LogWriter
from tunepipe.db.migrate import upgrade
from tunepipe.db.outage import Throttled
from tunepipe.db.secrets import SecretBox
from tunepipe.graders import Limits
from tunepipe.providers.http import Upstreams
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.criteria.alignment import Alignment
from tunepipe.services.criteria.service import CriteriaService
from tunepipe.services.datasets.imports import LogImports
from tunepipe.services.datasets.outputs import EntryOutputs
from tunepipe.services.datasets.pruning import PruningService
from tunepipe.services.datasets.relabel import Relabeling
from tunepipe.services.datasets.service import DatasetService
from tunepipe.services.evals.run import EvalRunner
from tunepipe.services.evals.service import EvalService
from tunepipe.services.fine_tunes.service import FineTuneService
from tunepipe.services.fine_tunes.serving import FineTuneServing
from tunepipe.services.fine_tunes.training import Trainer
from tunepipe.services.gateway.cache import ResponseCache
from tunepipe.services.gateway.calls import Breaker, Calls
from tunepipe.services.gateway.chat import ChatService
from tunepipe.services.gateway.completions import CompletionsService
from tunepipe.services.gateway.criteria import CriteriaStep
from tunepipe.services.gateway.embeddings import EmbeddingsService
from tunepipe.services.gateway.fallbacks import Fallbacks
from tunepipe.services.gateway.judge import Judge
from tunepipe.services.gateway.limits import RateLimits
from tunepipe.services.gateway.messages import MessagesService
from tunepipe.services.gateway.routing import Router
from tunepipe.services.jobs.queue import JobService
from tunepipe.services.local.registry import BaseModelService
from tunepipe.services.local.serving import LocalModels
from tunepipe.services.logs.recording import RequestLogger
from tunepipe.services.logs.service import LogService
from tunepipe.services.models.catalog import ModelCatalog
from tunepipe.services.projects.auth import Authenticator
from tunepipe.services.projects.moa import MoaConfigs
from tunepipe.services.projects.providers import ProviderService
from tunepipe.services.projects.service import ProjectService
from tunepipe.services.responses.passthrough import OpenAIResponses
from tunepipe.services.responses.service import ResponsesService
from tunepipe.settings import Settings
from tunepipe.stores.limits import Limiter, MemoryLimiter, RedisLimiter
from tunepipe.stores.responses import CacheStore, DatabaseStore, RedisStore
from tunepipe.telemetry.tracing import CallTracer

log = logging.getLogger(__name__)


def open_database(settings: Settings, *, migrate: bool) -> Database:
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    if migrate:
        upgrade(engine)
    return Database(engine)


@dataclass(slots=True)
class Container:
    settings: Settings
    db: Database
    box: SecretBox
    feed: ChangeFeed
    upstreams: Upstreams
    writer: LogWriter
    auth: Authenticator
    projects: ProjectService
    providers: ProviderService
    base_models: BaseModelService
    local: LocalModels
    serving: FineTuneServing
    router: Router
    catalog: ModelCatalog
    chat: ChatService
    messages: MessagesService
    embeddings: EmbeddingsService
    completions: CompletionsService
    responses: ResponsesService
    logs: LogService
    datasets: DatasetService
    pruning: PruningService
    imports: LogImports
    relabeling: Relabeling
    fine_tunes: FineTuneService
    jobs: JobService
    trainer: Trainer
    judge: Judge
    criteria: CriteriaService
    alignment: Alignment
    evals: EvalService
    eval_runner: EvalRunner
    cache: ResponseCache
    calls: Calls
    limits: RateLimits
    fallbacks: Fallbacks
    moa: MoaConfigs
    tracer: CallTracer | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        upstreams: Upstreams,
        tracer: CallTracer | None = None,
    ) -> Container:
        """Wire the graph (no I/O); ``tracer`` traces every model call."""
        box = SecretBox.from_settings(settings.secret_key, settings.home_dir)
        feed = ChangeFeed(db, poll_s=settings.change_poll_s, redis_url=settings.redis_url)
        writer = LogWriter(
            db.engine,
            queue_size=settings.log_queue_size,
            batch_size=settings.log_batch_size,
            enqueue_timeout_s=settings.log_enqueue_timeout_s,
            linger_s=settings.log_linger_s,
            spool_dir=settings.home_dir / "spool" if settings.log_spool else None,
            close_timeout_s=settings.log_close_timeout_s,
            error_log_interval_s=settings.db_error_log_interval_s,
            max_body_bytes=settings.log_max_body_bytes,
        )
        # One line per interval for the whole process while the database cannot be reached.
        outage = Throttled(logging.getLogger("tunepipe.db.outage"), settings.db_error_log_interval_s)
        base_models = BaseModelService(db, settings.home_dir, feed)
        local = LocalModels(settings, base_models, feed)
        serving = FineTuneServing(settings, db, local, feed)
        router = Router(settings, db, box, upstreams, local, serving, feed, outage)
        fine_tunes = FineTuneService(settings, db, local=local, serving=serving, feed=feed)
        attempts = settings.job_max_attempts
        logger = RequestLogger(writer, tracer)
        judge = Judge(router, logger, concurrency=settings.judge_concurrency)
        outputs = EntryOutputs(db, router)
        store: CacheStore = RedisStore(settings.redis_url) if settings.redis_url else DatabaseStore(db)
        limiter: Limiter = RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()
        cache = ResponseCache(store, default_ttl_s=settings.cache_ttl_s)
        breaker = Breaker(threshold=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s)
        calls = Calls(router, breaker, max_total_wait_s=settings.retry_max_wait_s)
        limits = RateLimits(limiter)
        grader_limits = Limits(
            timeout_s=settings.grader_timeout_s,
            cpu_s=settings.grader_cpu_s,
            memory_mb=settings.grader_memory_mb,
        )
        chat = ChatService(router, logger, CriteriaStep(db, judge), calls, cache, limits)
        return cls(
            settings=settings,
            db=db,
            box=box,
            feed=feed,
            upstreams=upstreams,
            writer=writer,
            auth=Authenticator(
                db, settings.auth_cache_ttl_s, feed, stale_max_s=settings.db_stale_max_s, outage=outage
            ),
            projects=ProjectService(db, feed),
            providers=ProviderService(db, box, upstreams, feed),
            base_models=base_models,
            local=local,
            serving=serving,
            router=router,
            catalog=ModelCatalog(router, fine_tunes),
            chat=chat,
            messages=MessagesService(chat, router, logger, limits),
            embeddings=EmbeddingsService(settings, router, logger, limits),
            completions=CompletionsService(router, logger, limits),
            responses=ResponsesService(chat, db, OpenAIResponses(router, logger, limits), logger),
            logs=LogService(db, writer),
            datasets=DatasetService(db),
            pruning=PruningService(db),
            imports=LogImports(
                db, writer, max_entries=settings.dataset_import_max, max_attempts=attempts, feed=feed
            ),
            relabeling=Relabeling(db, router, max_attempts=attempts, feed=feed),
            fine_tunes=fine_tunes,
            jobs=JobService(db),
            trainer=Trainer(settings, db, evaluate=serving.evaluate_test_set),
            judge=judge,
            criteria=CriteriaService(db, judge),
            alignment=Alignment(db, judge, outputs, max_attempts=attempts, feed=feed),
            evals=EvalService(db, router, max_attempts=attempts, feed=feed),
            eval_runner=EvalRunner(
                db, judge, outputs, concurrency=settings.eval_concurrency, grader_limits=grader_limits
            ),
            cache=cache,
            calls=calls,
            limits=limits,
            fallbacks=Fallbacks(db, router, breaker, feed),
            moa=MoaConfigs(db, router, feed),
            tracer=tracer,
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        migrate: bool = False,
        follow_changes: bool = True,
        span_exporter: SpanExporter | None = None,
    ) -> AsyncIterator[Container]:
        """Build, start what runs in the background, and tear it all down on the way out.

        ``follow_changes``: read the settings change feed (servers and workers do; a one-shot
        CLI command only announces its own changes). ``span_exporter``: where traces of model
        calls go, instead of the OTLP endpoint of the settings (if any).
        """
        db = open_database(settings, migrate=migrate)
        upstreams = Upstreams.open(settings)
        c = cls.build(settings, db, upstreams, CallTracer.build(settings, span_exporter))
        # Servers and workers write what dead processes left in the spool; a one-shot command
        # does not wait for that.
        c.writer.start(replay=follow_changes)
        try:
            await c.feed.start(poll=follow_changes)
            if follow_changes:
                c.cache.start()
            yield c
        finally:
            await c.cache.close()
            await c.limits.limiter.close()
            await c.feed.close()
            c.local.close()
            c.embeddings.close()
            await c.writer.close()
            await upstreams.close()
            db.dispose()
            if c.tracer is not None:
                c.tracer.shutdown()
            if c.writer.stats.dropped:
                log.error("request logs dropped during this run: %d", c.writer.stats.dropped)
