"""Sampling: greedy, seeded reproducibility, top-p, and OpenAI's presence/frequency penalties."""

from __future__ import annotations

import pytest
import torch

from tunepipe.engine.sampling import RowState, apply_penalties, sample
from tunepipe.engine.types import SamplingParams

CPU = torch.device("cpu")


def row(**params: float | int | None) -> RowState:
    return RowState.new(SamplingParams(**params), CPU)  # type: ignore[arg-type]


def draws(state: RowState, logits: torch.Tensor, n: int) -> list[int]:
    return [sample(logits.clone().unsqueeze(0), [state])[0] for _ in range(n)]


def test_sampling_greedy_is_argmax_per_row() -> None:
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    rows = [row(temperature=0.0) for _ in range(4)]
    assert sample(logits, rows) == logits.argmax(-1).tolist()


def test_sampling_mixed_batch_keeps_greedy_rows_greedy() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    rows = [row(temperature=0.0), row(temperature=1.0, seed=3), row(temperature=0.0)]
    out = sample(logits.clone(), rows)
    assert out[0] == int(logits[0].argmax()) and out[2] == int(logits[2].argmax())


def test_sampling_same_seed_same_tokens() -> None:
    logits = torch.zeros(100)  # uniform: every draw is up to the generator
    a = draws(row(temperature=1.0, seed=42), logits, 30)
    b = draws(row(temperature=1.0, seed=42), logits, 30)
    c = draws(row(temperature=1.0, seed=43), logits, 30)
    assert a == b
    assert a != c


def test_sampling_seed_is_independent_of_batch_neighbours() -> None:
    logits = torch.zeros(2, 100)
    alone = row(temperature=1.0, seed=7)
    together = [row(temperature=1.0, seed=99), row(temperature=1.0, seed=7)]
    first = [sample(logits[:1].clone(), [alone])[0] for _ in range(10)]
    second = [sample(logits.clone(), together)[1] for _ in range(10)]
    assert first == second


def test_sampling_top_p_keeps_the_smallest_prefix_reaching_p() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    state = row(temperature=1.0, top_p=0.7, seed=0)
    seen = set(draws(state, logits, 300))
    assert seen == {0, 1}


@pytest.mark.parametrize("top_p", [1e-9, 0.0])
def test_sampling_top_p_keeps_at_least_one_token(top_p: float) -> None:
    logits = torch.tensor([0.1, 2.0, 0.3, 1.9])
    state = row(temperature=1.0, top_p=top_p, seed=0)
    assert set(draws(state, logits, 50)) == {1}


def test_sampling_low_temperature_approaches_greedy() -> None:
    logits = torch.tensor([1.0, 1.5, 0.2])
    assert set(draws(row(temperature=1e-4, seed=1), logits, 50)) == {1}


def test_sampling_penalties_follow_openai_definition() -> None:
    # OpenAI: mu[j] -= c[j] * frequency_penalty + (c[j] > 0) * presence_penalty
    logits = torch.zeros(2, 6)
    a = row(temperature=0.0, presence_penalty=0.5, frequency_penalty=0.25)
    a.counts.update({1: 1, 3: 4})
    b = row(temperature=0.0, presence_penalty=-1.0, frequency_penalty=0.0)
    b.counts.update({2: 3})
    apply_penalties(logits, [a, b])
    assert logits[0].tolist() == pytest.approx([0, -0.75, 0, -1.5, 0, 0])
    assert logits[1].tolist() == pytest.approx([0, 0, 1.0, 0, 0, 0])


def test_sampling_no_penalty_leaves_logits_alone() -> None:
    logits = torch.randn(1, 8)
    before = logits.clone()
    state = row(temperature=1.0)
    state.counts.update({0: 5})
    apply_penalties(logits, [state])
    assert torch.equal(logits, before)


def test_sampling_penalty_changes_the_greedy_choice() -> None:
    logits = torch.tensor([[3.0, 2.0, 0.0]])
    state = row(temperature=0.0, frequency_penalty=0.6)
    state.counts.update({0: 2})
    apply_penalties(logits, [state])
    assert float(logits[0, 0]) == pytest.approx(1.8)
    assert sample(logits, [state]) == [1]
