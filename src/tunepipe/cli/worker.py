"""``tunepipe worker``: a training worker on its own, without the API.

For hosts that train but do not serve (a GPU box beside the gateway), or to run training out of
the server process (``TUNEPIPE_WORKER=false`` on the servers). It opens and migrates the same
database the servers use and runs :class:`~tunepipe.services.training_worker.TrainingWorker`
until SIGINT or SIGTERM; a job running then is handed back to the queue for the next worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from sqlalchemy import Engine

from tunepipe.services import setup
from tunepipe.services.datasets import DatasetService
from tunepipe.services.fine_tunes import FineTuneService
from tunepipe.services.local_models import LocalModels
from tunepipe.services.pruning import PruningService
from tunepipe.services.training_run import Evaluate
from tunepipe.services.training_worker import TrainingWorker
from tunepipe.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, once: bool = False) -> None:
    """Run a training worker until SIGINT/SIGTERM, or (``once``) for at most one job."""
    asyncio.run(_main(settings, once=once))


async def _main(settings: Settings, *, once: bool) -> None:
    engine = await asyncio.to_thread(setup.open_engine, settings)  # migrates, like `serve`
    evaluate, close_evaluator = _evaluator(settings, engine)
    worker = TrainingWorker(settings, engine, evaluate=evaluate)
    try:
        if once:
            if not await worker.run_once():
                log.info("no queued training job")
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await worker.start()
        await stop.wait()
        log.info("stopping the training worker")
    finally:
        await worker.close()
        close_evaluator()
        engine.dispose()


def _evaluator(settings: Settings, engine: Engine) -> tuple[Evaluate, Callable[[], None]]:
    """The test-set evaluator, and how to release what it holds (the local engine it generates
    with, loaded on the first evaluation)."""
    base_models = setup.base_model_service(settings, engine)
    local = LocalModels(settings, base_models)
    service = FineTuneService(
        settings,
        engine,
        datasets=DatasetService(engine),
        pruning=PruningService(engine),
        base_models=base_models,
        local=local,
    )
    return service.evaluate_test_set, local.close
