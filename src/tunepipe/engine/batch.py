"""One running batch on one model: rows share a KV cache and advance one token per step.

New rows are prefilled on their own and then merged into the running cache (left-padded to a
common length), so a request never waits for the batch in front of it to finish: this is
continuous batching on top of Hugging Face's ``DynamicCache``. Finished rows leave the cache
at once, and columns that have become padding for every remaining row are trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers.decoders import DecodeStream
from transformers import DynamicCache

from tunepipe.engine.constrained import apply_masks
from tunepipe.engine.loading import LoadedModel
from tunepipe.engine.sampling import RowState, apply_penalties, sample
from tunepipe.engine.stops import StopMatcher
from tunepipe.engine.types import Delta, Emit, SequenceSpec, TokenLogprob


@dataclass(eq=False)
class Row:
    spec: SequenceSpec
    emit: Emit
    cancelled: Any  # an object with a boolean ``is_set()`` (threading.Event)
    state: RowState
    stops: StopMatcher
    decoder: DecodeStream
    last_token: int = -1
    next_position: int = 0
    generated: int = 0
    finished: bool = False
    text_parts: list[str] = field(default_factory=list)


# Cache layers are typed as a union that includes layers without keys/values (linear
# attention); the decoder-only models served here use plain key/value layers.
def _layers(cache: DynamicCache) -> list[Any]:
    return list(cache.layers)


def _pad_left(cache: DynamicCache, pad: int) -> None:
    if pad:
        for layer in _layers(cache):
            layer.keys = F.pad(layer.keys, (0, 0, pad, 0))
            layer.values = F.pad(layer.values, (0, 0, pad, 0))


def _concat(into: DynamicCache, other: DynamicCache) -> None:
    for a, b in zip(_layers(into), _layers(other), strict=True):
        a.keys = torch.cat([a.keys, b.keys], dim=0)
        a.values = torch.cat([a.values, b.values], dim=0)


def _trim_left(cache: DynamicCache, n: int) -> None:
    if n:
        for layer in _layers(cache):
            layer.keys = layer.keys[:, :, n:, :]
            layer.values = layer.values[:, :, n:, :]


class Batch:
    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.rows: list[Row] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, cache length]

    def __bool__(self) -> bool:
        return bool(self.rows)

    # ------------------------------------------------------------------ model calls

    def _forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
        adapters: list[str],
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        with self.loaded.lock:  # never while an adapter is being attached (see LoadedModel.lock)
            if self.loaded.adapters:
                kwargs["adapter_names"] = adapters
            out = self.loaded.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                **kwargs,
            )
        logits: torch.Tensor = out.logits[:, -1, :].float()
        return logits

    @staticmethod
    def _adapter_names(rows: list[Row]) -> list[str]:
        return [r.spec.adapter or "__base__" for r in rows]

    # ------------------------------------------------------------------ admission

    def admit(self, rows: list[Row]) -> None:
        """Prefill ``rows`` together, pick their first tokens, and merge them into the batch."""
        device = self.loaded.device
        longest = max(len(r.spec.prompt_ids) for r in rows)
        pad_id = 0
        ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.spec.prompt_ids)
            ids[i, longest - n :] = torch.tensor(r.spec.prompt_ids)
            mask[i, longest - n :] = 1
            r.next_position = n
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.loaded.model.config)
        logits = self._forward(ids, mask, positions, cache, self._adapter_names(rows))
        self._choose(rows, logits)
        if self.cache is None or self.mask is None or not self.rows:
            self.cache, self.mask = cache, mask
            self.rows = list(rows)
        else:
            old_len, new_len = self.mask.shape[1], mask.shape[1]
            if old_len < new_len:
                _pad_left(self.cache, new_len - old_len)
                self.mask = F.pad(self.mask, (new_len - old_len, 0))
            elif new_len < old_len:
                _pad_left(cache, old_len - new_len)
                mask = F.pad(mask, (old_len - new_len, 0))
            _concat(self.cache, cache)
            self.mask = torch.cat([self.mask, mask], dim=0)
            self.rows.extend(rows)
        self._drop_finished()

    # ------------------------------------------------------------------ decoding

    def step(self) -> None:
        """Advance every row by one token."""
        assert self.cache is not None and self.mask is not None
        for r in self.rows:
            if r.cancelled.is_set():
                r.finished = True
        self._drop_finished()
        if not self.rows:
            return
        device = self.loaded.device
        ids = torch.tensor([[r.last_token] for r in self.rows], device=device)
        self.mask = F.pad(self.mask, (0, 1), value=1)
        positions = torch.tensor([[r.next_position] for r in self.rows], device=device)
        logits = self._forward(ids, self.mask, positions, self.cache, self._adapter_names(self.rows))
        for r in self.rows:
            r.next_position += 1
        self._choose(self.rows, logits)
        self._drop_finished()

    def _choose(self, rows: list[Row], logits: torch.Tensor) -> None:
        """Sample one token per row from ``logits`` and hand the text to each row's client."""
        want_logprobs = [r.spec.params.logprobs for r in rows]
        raw = torch.log_softmax(logits, dim=-1) if any(want_logprobs) else None
        states = [r.state for r in rows]
        apply_penalties(logits, states)
        apply_masks(logits, [r.spec.constraint for r in rows])
        tokens = sample(logits, states)
        for i, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            logprobs = (
                self._logprobs(raw[i], token, row.spec.params.top_logprobs)
                if raw is not None and want_logprobs[i]
                else []
            )
            self._accept(row, token, logprobs)

    def _logprobs(self, row_logprobs: torch.Tensor, token: int, top: int) -> list[TokenLogprob]:
        decode = self.loaded.tokenizer.decode
        text = decode([token])
        alternatives: tuple[tuple[str, float, list[int]], ...] = ()
        if top:
            values, indices = row_logprobs.topk(top)
            alternatives = tuple(
                (t := decode([int(j)]), float(v), list(t.encode()))
                for v, j in zip(values.tolist(), indices.tolist(), strict=True)
            )
        return [
            TokenLogprob(
                token=text, logprob=float(row_logprobs[token]), bytes=list(text.encode()), top=alternatives
            )
        ]

    def _accept(self, row: Row, token: int, logprobs: list[TokenLogprob]) -> None:
        row.state.counts[token] = row.state.counts.get(token, 0) + 1
        row.generated += 1
        row.last_token = token
        constraint = row.spec.constraint
        if constraint is not None:
            constraint.consume_token(token)
        finish: str | None = None
        if token in self.loaded.eos_ids:
            visible = row.stops.flush()
            finish = "stop"
            logprobs = []
        else:
            piece = row.decoder.step(self.loaded.tokenizer._tokenizer, token) or ""
            visible = row.stops.feed(piece)
            if row.stops.stopped or (constraint is not None and constraint.is_stopped()):
                finish = "stop"
            elif row.generated >= row.spec.params.max_tokens:
                finish = "length"
            if finish is not None:
                visible += row.stops.flush()
        row.text_parts.append(visible)
        if finish is not None:
            row.finished = True
        row.emit(
            Delta(
                index=row.spec.index,
                text=visible,
                logprobs=logprobs,
                finish_reason=finish,
                completion_tokens=row.generated,
            )
        )

    def _drop_finished(self) -> None:
        if all(not r.finished for r in self.rows):
            return
        keep = [i for i, r in enumerate(self.rows) if not r.finished]
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache = self.mask = None
            return
        assert self.cache is not None and self.mask is not None
        self.cache.batch_select_indices(torch.tensor(keep, device=self.loaded.device))
        self.mask = self.mask[keep]
        # Columns that are padding for every remaining row are dead weight in every step.
        live = self.mask.any(dim=0).nonzero()
        first = int(live[0]) if live.numel() else 0
        if first:
            _trim_left(self.cache, first)
            self.mask = self.mask[:, first:]
