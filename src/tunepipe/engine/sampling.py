"""Choosing the next token for every row of a batch, each row with its own parameters.

Order of operations, as in OpenAI and vLLM: logprobs are read from the raw logits; then
presence/frequency penalties; then the JSON/tool constraint mask; then temperature and top-p;
then a draw from the row's own seeded generator (greedy when temperature is 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tunepipe.engine.types import SamplingParams


@dataclass(slots=True)
class RowState:
    """Per-sequence sampling state that lives for the whole generation."""

    params: SamplingParams
    generator: torch.Generator | None
    counts: dict[int, int]

    @classmethod
    def new(cls, params: SamplingParams, device: torch.device) -> RowState:
        generator = None
        if params.seed is not None and params.temperature > 0:
            generator = torch.Generator(device=device)
            generator.manual_seed(params.seed)
        return cls(params=params, generator=generator, counts={})


def apply_penalties(logits: torch.Tensor, rows: Sequence[RowState]) -> None:
    """OpenAI's presence and frequency penalties, in place, from the tokens each row produced."""
    for i, row in enumerate(rows):
        p = row.params
        if not row.counts or (p.presence_penalty == 0 and p.frequency_penalty == 0):
            continue
        ids = torch.tensor(list(row.counts), device=logits.device)
        counts = torch.tensor(list(row.counts.values()), device=logits.device, dtype=logits.dtype)
        logits[i, ids] -= p.frequency_penalty * counts + p.presence_penalty


def sample(logits: torch.Tensor, rows: Sequence[RowState]) -> list[int]:
    """One token per row from float32 ``logits`` of shape ``[rows, vocab]``."""
    temps = [r.params.temperature for r in rows]
    if all(t <= 0 for t in temps):
        return [int(t) for t in logits.argmax(dim=-1).tolist()]
    out: list[int] = []
    for i, row in enumerate(rows):
        p = row.params
        if p.temperature <= 0:
            out.append(int(logits[i].argmax()))
            continue
        probs = torch.softmax(logits[i] / p.temperature, dim=-1)
        if p.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            cumulative = sorted_probs.cumsum(-1)
            # Keep the smallest prefix whose mass reaches top_p (always at least one token).
            drop = cumulative - sorted_probs >= p.top_p
            drop[0] = False  # top_p == 0 would otherwise drop every token
            sorted_probs[drop] = 0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        out.append(int(torch.multinomial(probs, 1, generator=row.generator)))
    return out
