"""Loaded models, kept within a memory budget.

Models load on first use, in a worker thread (the event loop never waits on disk or weights),
once even when many requests ask at the same time. When a new model would exceed the budget,
the least recently used idle models are unloaded first.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tunepipe.engine.loading import LoadedModel, attach_adapter, load_model_dir, pick_device
from tunepipe.engine.scheduler import Scheduler

log = logging.getLogger(__name__)


class ModelPool:
    def __init__(self, scheduler: Scheduler, *, memory_budget_bytes: int, device: str | None = None) -> None:
        self._scheduler = scheduler
        self._budget = memory_budget_bytes
        self._device = pick_device(device)
        self._models: dict[str, LoadedModel] = {}
        self._last_used: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def loaded(self) -> list[str]:
        return list(self._models)

    async def get(self, name: str, path: Path | Callable[[], Path]) -> LoadedModel:
        """The loaded model ``name``, loading it from ``path`` if needed."""
        self._last_used[name] = time.monotonic()
        model = self._current(name, path)
        if model is not None:
            return model
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            model = self._current(name, path)
            if model is None:
                self._models.pop(name, None)
                where = path() if callable(path) else path
                model = await asyncio.to_thread(load_model_dir, name, where, device=self._device)
                self._make_room(model.nbytes, keep=name)
                self._models[name] = model
        return model

    def _current(self, name: str, path: Path | Callable[[], Path]) -> LoadedModel | None:
        """The loaded ``name``, unless the name now stands for another directory (removed and
        registered again): then the loaded weights are stale."""
        model = self._models.get(name)
        if model is not None and not callable(path) and model.path != path:
            return None
        return model

    async def adapter(self, base: LoadedModel, adapter: str, path: Path) -> None:
        if base.adapters.get(adapter) != path:
            # Adapter weights load quickly (~0.2 s for SmolLM2) but still off the event loop.
            await asyncio.to_thread(attach_adapter, base, adapter, path)

    def _make_room(self, incoming: int, *, keep: str) -> None:
        used = sum(m.nbytes for m in self._models.values())
        for name in sorted(self._models, key=lambda n: self._last_used.get(n, 0.0)):
            if used + incoming <= self._budget:
                break
            victim = self._models[name]
            if name == keep or self._scheduler.busy_with(victim):
                continue
            log.info("unloading %s to stay within the memory budget", name)
            used -= victim.nbytes
            del self._models[name]
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def unload(self, name: str) -> bool:
        model = self._models.pop(name, None)
        return model is not None
