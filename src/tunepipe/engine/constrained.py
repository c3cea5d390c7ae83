"""Constrained decoding with llguidance: JSON schemas and tool-call grammars become a per-step
token mask, so the output always parses.

The mask is unpacked here with plain tensor ops rather than llguidance's ``torch.compile``d
kernel, which would compile on first use (tens of seconds on a CPU) for no gain at our sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import llguidance
import llguidance.hf
import llguidance.torch
import torch

from tunepipe.errors import InvalidRequest

_BITS = torch.arange(32, dtype=torch.int32)


class ConstraintFactory:
    """Builds matchers for one tokenizer (building the token trie is done once, here)."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self._tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)

    def _matcher(self, grammar: str) -> llguidance.LLMatcher:
        matcher = llguidance.LLMatcher(self._tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise InvalidRequest(
                f"Unsupported output constraint: {matcher.get_error()}", param="response_format"
            )
        return matcher

    def json_schema(self, schema: dict[str, Any] | None) -> llguidance.LLMatcher:
        """Output that is one JSON value valid against ``schema`` (any object when None)."""
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema if schema is not None else {"type": "object"},
            defaults={"whitespace_flexible": False},
        )
        return self._matcher(grammar)

    def lark(self, grammar: str) -> llguidance.LLMatcher:
        return self._matcher(grammar)


def apply_masks(logits: torch.Tensor, matchers: Sequence[llguidance.LLMatcher | None]) -> None:
    """Set to -inf, in place, every token a row's matcher forbids next."""
    rows = [i for i, m in enumerate(matchers) if m is not None and not m.is_stopped()]
    if not rows:
        return
    vocab = logits.shape[-1]
    bitmask = llguidance.torch.allocate_token_bitmask(len(rows), vocab)
    for k, i in enumerate(rows):
        llguidance.torch.fill_next_token_bitmask(matchers[i], bitmask, k)  # type: ignore[arg-type]
    allowed = ((bitmask.unsqueeze(-1) >> _BITS) & 1).bool().view(len(rows), -1)[:, :vocab]
    index = torch.tensor(rows, device=logits.device)
    logits[index] = logits[index].masked_fill(~allowed.to(logits.device), float("-inf"))
