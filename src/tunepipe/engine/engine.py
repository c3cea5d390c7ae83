"""The engine facade the gateway talks to: load on demand, submit sequences, receive deltas
on the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from pathlib import Path

import torch

from tunepipe.engine.loading import LoadedModel
from tunepipe.engine.pool import ModelPool
from tunepipe.engine.scheduler import Scheduler
from tunepipe.engine.types import Delta, SequenceSpec


class LocalEngine:
    def __init__(
        self, *, memory_budget_bytes: int, device: str | None = None, max_batch: int = 32, threads: int = 0
    ) -> None:
        # Torch's default thread count can exceed the cores this process may use; 0 means all
        # of those (a busy machine can be faster with fewer, hence the setting).
        torch.set_num_threads(threads or max(1, len(os.sched_getaffinity(0))))
        self.scheduler = Scheduler(max_batch=max_batch)
        self.pool = ModelPool(self.scheduler, memory_budget_bytes=memory_budget_bytes, device=device)

    async def model(self, name: str, path: Path, adapter: tuple[str, Path] | None = None) -> LoadedModel:
        loaded = await self.pool.get(name, path)
        if adapter is not None:
            await self.pool.adapter(loaded, *adapter)
        return loaded

    async def generate(self, loaded: LoadedModel, specs: list[SequenceSpec]) -> AsyncGenerator[Delta, None]:
        """Deltas of all ``specs`` as they are produced; ends when every sequence finished.
        Closing the iterator early cancels the sequences that are still running."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta] = asyncio.Queue()

        def emit(delta: Delta) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, delta)

        cancel = self.scheduler.submit(loaded, specs, emit)
        remaining = len(specs)
        try:
            while remaining:
                delta = await queue.get()
                if delta.finish_reason is not None:
                    remaining -= 1
                yield delta
        finally:
            cancel.set()

    def close(self) -> None:
        self.scheduler.close()
