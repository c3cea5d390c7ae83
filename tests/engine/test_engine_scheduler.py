"""The engine thread and its batches on the tiny model, without a server: greedy output equals
plain ``model.generate``, alone, in a batch of eight, and for sequences that join a batch while
it runs; cancelled sequences stop; a failing request fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tokenizers.decoders import DecodeStream

from engine.conftest import PROMPTS, Reference, user
from tunepipe.engine.batch import Batch, Row
from tunepipe.engine.loading import LoadedModel, load_model_dir
from tunepipe.engine.sampling import RowState
from tunepipe.engine.scheduler import Scheduler
from tunepipe.engine.stops import StopMatcher
from tunepipe.engine.types import Delta, SamplingParams, SequenceSpec


class Collector:
    """An ``emit`` callback that gathers the deltas of ``n`` sequences."""

    def __init__(self, n: int, *, cancel_after: int | None = None, pause_after: int | None = None) -> None:
        self.n = n
        self.text: dict[int, list[str]] = {}
        self.finish: dict[int, str] = {}
        self.tokens: dict[int, int] = {}
        self.errors: list[str] = []
        self.count = 0
        self.done = threading.Event()
        self.progress = threading.Condition()
        self.cancel: threading.Event | None = None
        self._cancel_after = cancel_after
        # Blocking in ``emit`` holds the engine thread mid-step, so tests can act at a known point.
        self._pause_after = pause_after
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __call__(self, delta: Delta) -> None:
        with self.progress:
            self.count += 1
            self.text.setdefault(delta.index, []).append(delta.text)
            self.tokens[delta.index] = delta.completion_tokens
            if delta.error:
                self.errors.append(delta.error)
            if delta.finish_reason is not None:
                self.finish[delta.index] = delta.finish_reason
                if len(self.finish) == self.n:
                    self.done.set()
            if self._cancel_after is not None and self.count >= self._cancel_after and self.cancel:
                self.cancel.set()
            self.progress.notify_all()
        if self.count == self._pause_after:
            self.paused.set()
            assert self.resume.wait(30)

    def joined(self, index: int = 0) -> str:
        return "".join(self.text.get(index, []))

    def wait_for(self, count: int, timeout: float = 30) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.count >= count, timeout), "no progress"

    def wait(self, timeout: float = 60) -> None:
        assert self.done.wait(timeout), f"unfinished: {self.finish}"


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path) -> LoadedModel:
    return load_model_dir("tiny", tiny_dir, device=torch.device("cpu"))


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    s = Scheduler(max_batch=32)
    try:
        yield s
    finally:
        s.close()


def greedy_spec(ref: Reference, prompt: str, max_tokens: int, index: int = 0) -> SequenceSpec:
    return SequenceSpec(
        index=index,
        prompt_ids=ref.prompt_ids(user(prompt)),
        params=SamplingParams(temperature=0.0, max_tokens=max_tokens),
    )


def assert_matches_generate(
    ref: Reference, prompt: str, max_tokens: int, got: Collector, index: int = 0
) -> None:
    text, ids = ref.greedy_with_ids(user(prompt), max_tokens)
    assert got.joined(index) == text, prompt
    assert got.tokens[index] == len(ids)
    ended_by_eos = ids[-1] == ref.tokenizer.eos_token_id
    assert got.finish[index] == ("stop" if ended_by_eos else "length")


def test_scheduler_greedy_single_sequence_equals_generate(
    scheduler: Scheduler, loaded: LoadedModel, tiny_ref: Reference
) -> None:
    got = Collector(1)
    scheduler.submit(loaded, [greedy_spec(tiny_ref, PROMPTS[1], 40)], got)
    got.wait()
    assert_matches_generate(tiny_ref, PROMPTS[1], 40, got)
    assert len(got.joined()) > 20  # a meaningful comparison, not an immediate end of turn


def test_scheduler_eight_concurrent_prompts_equal_sequential_generate(
    scheduler: Scheduler, loaded: LoadedModel, tiny_ref: Reference
) -> None:
    # Different prompt lengths and different budgets: rows leave the batch at different steps.
    budgets = [12 + 5 * i for i in range(len(PROMPTS))]
    collectors = [Collector(1) for _ in PROMPTS]
    for prompt, budget, got in zip(PROMPTS, budgets, collectors, strict=True):
        scheduler.submit(loaded, [greedy_spec(tiny_ref, prompt, budget)], got)
    for prompt, budget, got in zip(PROMPTS, budgets, collectors, strict=True):
        got.wait()
        assert_matches_generate(tiny_ref, prompt, budget, got)
    assert len({c.joined() for c in collectors}) == len(PROMPTS)


def test_scheduler_sequences_joining_a_running_batch_equal_sequential_generate(
    scheduler: Scheduler, loaded: LoadedModel, tiny_ref: Reference
) -> None:
    first, later = PROMPTS[:4], PROMPTS[4:]
    early = Collector(len(first), pause_after=4 * 5)
    scheduler.submit(loaded, [greedy_spec(tiny_ref, p, 60, i) for i, p in enumerate(first)], early)
    assert early.paused.wait(30)  # the engine thread is held after five tokens of every early row
    late = [Collector(1) for _ in later]
    for prompt, got in zip(later, late, strict=True):
        scheduler.submit(loaded, [greedy_spec(tiny_ref, prompt, 30)], got)
    assert not early.done.is_set()
    early.resume.set()
    early.wait()
    for i, prompt in enumerate(first):
        assert_matches_generate(tiny_ref, prompt, 60, early, i)
    for prompt, got in zip(later, late, strict=True):
        got.wait()
        assert_matches_generate(tiny_ref, prompt, 30, got)


def make_row(loaded: LoadedModel, spec: SequenceSpec, got: Collector) -> Row:
    return Row(
        spec=spec,
        emit=got,
        cancelled=threading.Event(),
        state=RowState.new(spec.params, loaded.device),
        stops=StopMatcher(spec.params.stop),
        decoder=DecodeStream(skip_special_tokens=True),
    )


def test_batch_merging_rows_between_steps_keeps_every_row_exact(
    loaded: LoadedModel, tiny_ref: Reference
) -> None:
    """Deterministic interleaving on one Batch: a longer prompt joins (the running cache is
    padded), then a shorter one (the newcomer is padded), while other rows finish and leave."""
    plan = [
        # (step at which the row is admitted, prompt, max_tokens)
        (0, PROMPTS[0], 6),
        (0, PROMPTS[3], 25),
        (3, PROMPTS[7], 20),  # longer than everything running
        (5, PROMPTS[6], 4),  # shorter than the running cache
        (9, PROMPTS[2], 15),
    ]
    collectors = [Collector(1) for _ in plan]
    batch = Batch(loaded)
    with torch.inference_mode():
        step = 0
        while step < 200:
            joining = [
                make_row(loaded, greedy_spec(tiny_ref, prompt, budget), collectors[k])
                for k, (at, prompt, budget) in enumerate(plan)
                if at == step
            ]
            if joining:
                batch.admit(joining)
            if batch:
                batch.step()
            elif step > max(at for at, _, _ in plan):
                break
            step += 1
    for (_, prompt, budget), got in zip(plan, collectors, strict=True):
        assert got.done.is_set()
        assert_matches_generate(tiny_ref, prompt, budget, got)
    assert batch.cache is None and not batch.rows


def test_scheduler_more_sequences_than_max_batch_all_finish_exactly(
    loaded: LoadedModel, tiny_ref: Reference
) -> None:
    small = Scheduler(max_batch=2)
    try:
        got = Collector(5)
        small.submit(loaded, [greedy_spec(tiny_ref, PROMPTS[i], 10, i) for i in range(5)], got)
        got.wait()
        for i in range(5):
            assert_matches_generate(tiny_ref, PROMPTS[i], 10, got, i)
    finally:
        small.close()


def test_scheduler_cancellation_stops_only_that_sequence(
    scheduler: Scheduler, loaded: LoadedModel, tiny_ref: Reference
) -> None:
    cancelled = Collector(1, cancel_after=3)
    other = Collector(1)
    cancelled.cancel = scheduler.submit(loaded, [greedy_spec(tiny_ref, PROMPTS[0], 100_000)], cancelled)
    scheduler.submit(loaded, [greedy_spec(tiny_ref, PROMPTS[1], 40)], other)
    other.wait()
    assert_matches_generate(tiny_ref, PROMPTS[1], 40, other)
    # The cancel was set from the third delta; the engine drops the row at the next step.
    assert cancelled.count == 3
    assert not cancelled.finish
    deadline = time.monotonic() + 10
    while scheduler.busy_with(loaded):  # the batch is dropped right after its last step
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert cancelled.count == 3


def test_scheduler_a_failing_request_fails_alone(
    scheduler: Scheduler, loaded: LoadedModel, tiny_ref: Reference
) -> None:
    running = Collector(1)
    scheduler.submit(loaded, [greedy_spec(tiny_ref, PROMPTS[2], 50)], running)
    running.wait_for(3)
    bad = Collector(1)
    vocab = loaded.vocab_size
    scheduler.submit(
        loaded,
        [SequenceSpec(index=0, prompt_ids=[1, vocab + 5], params=SamplingParams(temperature=0.0))],
        bad,
    )
    bad.wait()
    assert bad.finish == {0: "error"} and bad.errors
    running.wait()
    assert_matches_generate(tiny_ref, PROMPTS[2], 50, running)
