"""``tunepipe worker``: a job worker on its own, without the API.

For hosts that train but do not serve (a GPU box beside the gateway), or to run jobs out of the
server processes (``TUNEPIPE_WORKER=false`` on the servers). It opens and migrates the database
the servers use and runs a :class:`~tunepipe.jobs.worker.Worker` until SIGINT or SIGTERM; a job
running then is handed back to the queue for the next worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from tunepipe.jobs.kinds import build_worker
from tunepipe.services.container import Container
from tunepipe.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, once: bool = False, kinds: list[str] | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM, or (``once``) for at most one job."""
    asyncio.run(_main(settings, once=once, kinds=kinds))


async def _main(settings: Settings, *, once: bool, kinds: list[str] | None) -> None:
    async with Container.open(settings, migrate=True) as container:
        worker = build_worker(container, kinds)
        try:
            if once:
                if not await worker.run_once():
                    log.info("no queued job")
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await worker.start()
            await stop.wait()
            log.info("stopping the worker")
        finally:
            await worker.close()
