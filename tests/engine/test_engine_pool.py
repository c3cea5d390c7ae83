"""ModelPool: models load once, and the least recently used idle models are unloaded to stay within
the memory budget; a model the scheduler is using is never unloaded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.conftest import PROMPTS, Reference, build_lora, user
from tunepipe.engine.loading import attach_adapter, detach_adapter, load_model_dir
from tunepipe.engine.pool import ModelPool
from tunepipe.engine.scheduler import Scheduler
from tunepipe.engine.types import Delta, SamplingParams, SequenceSpec


@pytest.fixture(scope="module")
def model_bytes(tiny_dir: Path) -> int:
    return load_model_dir("probe", tiny_dir, device=torch.device("cpu")).nbytes


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    s = Scheduler()
    try:
        yield s
    finally:
        s.close()


def pool_for(scheduler: Scheduler, model_bytes: int, models: float) -> ModelPool:
    """A pool whose budget holds ``models`` tiny models."""
    return ModelPool(scheduler, memory_budget_bytes=int(model_bytes * models), device="cpu")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


async def test_pool_budget_for_one_unloads_the_first_model(
    scheduler: Scheduler, model_bytes: int, tiny_dir: Path, other_tiny_dir: Path
) -> None:
    pool = pool_for(scheduler, model_bytes, 1.5)
    first = await pool.get("first", tiny_dir)
    assert pool.loaded == ["first"]
    second = await pool.get("second", other_tiny_dir)
    assert pool.loaded == ["second"]
    assert not same_weights(first.model, second.model)
    # Asking for the first again loads it again (a fresh object) and unloads the second.
    again = await pool.get("first", tiny_dir)
    assert again is not first
    assert same_weights(first.model, again.model)
    assert pool.loaded == ["first"]


async def test_pool_evicts_the_least_recently_used(
    scheduler: Scheduler, model_bytes: int, tiny_dir: Path, other_tiny_dir: Path
) -> None:
    pool = pool_for(scheduler, model_bytes, 2.5)
    a = await pool.get("a", tiny_dir)
    await pool.get("b", other_tiny_dir)
    assert await pool.get("a", tiny_dir) is a  # a hit; "b" is now the least recently used
    await pool.get("c", tiny_dir)
    assert sorted(pool.loaded) == ["a", "c"]


async def test_pool_loads_once_under_concurrent_requests(
    scheduler: Scheduler, model_bytes: int, tiny_dir: Path
) -> None:
    pool = pool_for(scheduler, model_bytes, 4)
    models = await asyncio.gather(*(pool.get("tiny", tiny_dir) for _ in range(5)))
    assert all(m is models[0] for m in models)
    assert pool.loaded == ["tiny"]


async def test_pool_never_evicts_a_model_the_scheduler_is_using(
    scheduler: Scheduler, model_bytes: int, tiny_dir: Path, other_tiny_dir: Path, tiny_ref: Reference
) -> None:
    pool = pool_for(scheduler, model_bytes, 1.5)
    busy = await pool.get("busy", tiny_dir)
    paused, resume = threading.Event(), threading.Event()
    deltas = 0

    def emit(delta: Delta) -> None:
        # Hold the engine thread mid-generation (third token): the model is certainly in use.
        nonlocal deltas
        deltas += 1
        if deltas == 3:
            paused.set()
            resume.wait(30)

    # A prompt whose greedy continuation runs 40 tokens without an end of turn.
    prompt = tiny_ref.prompt_ids(user(PROMPTS[1]))
    spec = SequenceSpec(index=0, prompt_ids=prompt, params=SamplingParams(temperature=0.0, max_tokens=10**6))
    cancel = scheduler.submit(busy, [spec], emit)
    try:
        assert paused.wait(30)
        assert scheduler.busy_with(busy)
        await pool.get("other", other_tiny_dir)
        # Over budget, but the running model stays.
        assert sorted(pool.loaded) == ["busy", "other"]
    finally:
        cancel.set()
        resume.set()
    deadline = time.monotonic() + 10
    while scheduler.busy_with(busy):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert deltas == 3
    await pool.get("third", tiny_dir)
    assert pool.loaded == ["third"]


async def test_pool_serves_a_reregistered_name_from_its_new_directory(
    scheduler: Scheduler, model_bytes: int, tiny_dir: Path, other_tiny_dir: Path
) -> None:
    pool = pool_for(scheduler, model_bytes, 4)
    first = await pool.get("name", tiny_dir)
    again = await pool.get("name", other_tiny_dir)
    assert again is not first and again.path == other_tiny_dir
    assert not same_weights(first.model, again.model)
    assert pool.loaded == ["name"]
    assert await pool.get("name", other_tiny_dir) is again


def test_detach_last_adapter_restores_the_base_model(tiny_dir: Path, tmp_path: Path) -> None:
    ids = torch.tensor([[5, 17, 42, 7]])
    loaded = load_model_dir("tiny", tiny_dir)
    with torch.no_grad():
        base = loaded.model(ids).logits
    attach_adapter(loaded, "a", build_lora(tiny_dir, tmp_path / "a", seed=1))
    attach_adapter(loaded, "b", build_lora(tiny_dir, tmp_path / "b", seed=2))
    detach_adapter(loaded, "a")
    loaded.model.set_adapter("b")
    with torch.no_grad():
        assert not torch.allclose(loaded.model(ids).logits, base)
    detach_adapter(loaded, "b")
    assert loaded.adapters == {}
    with torch.no_grad():
        assert torch.allclose(loaded.model(ids).logits, base, atol=1e-6)
    attach_adapter(loaded, "a", tmp_path / "a")  # and adapters can come back
    assert set(loaded.adapters) == {"a"}
