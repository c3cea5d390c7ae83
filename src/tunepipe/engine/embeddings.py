"""Sentence embeddings from local encoder models (``local:<name>`` on ``/embeddings``).

A model directory in Hugging Face layout is loaded with ``AutoModel`` and ``AutoTokenizer``.
When it is a sentence-transformers directory, its ``modules.json`` says what follows the
encoder: the pooling (``1_Pooling/config.json``: CLS, mean, max, mean/sqrt(len) or last token;
several modes are concatenated, as sentence-transformers does) and whether the vectors are
L2-normalised (a ``Normalize`` module). Without one, tokens are mean-pooled and not normalised.
A ``Dense`` projection or weighted-mean pooling is refused at load time rather than served wrong.

The work runs the way the generation engine's does: weights load on a worker thread, once per
model, and every forward pass runs on one thread of its own (``embeddings``), so the event loop
never waits on torch and passes never race for the cores. Calls that arrive while a pass runs
are merged into the next one (up to ``max_batch`` inputs), sorted by length so padding stays
small.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

from tunepipe.engine.loading import pick_device

log = logging.getLogger(__name__)

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_SUPPORTED_POOLING = frozenset({"cls", "max", "mean", "mean_sqrt_len", "lasttoken"})
_UNBOUNDED = 1_000_000  # tokenizers without a limit say ~1e30


class EmbeddingInputError(ValueError):
    """An input this model cannot embed (too long, unknown token ids); ``index`` says which."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_embedding_dir(path: Path) -> bool:
    """Whether the directory holds an encoder for embeddings: a sentence-transformers layout, or
    a model whose architectures are not generative."""
    if (path / "modules.json").is_file():
        return True
    config = _read_json(path / "config.json")
    archs = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(archs, list) or not archs:
        return False
    return not any(str(a).endswith(_CAUSAL_SUFFIXES) for a in archs)


@dataclass(frozen=True, slots=True)
class Head:
    """What turns token states into one vector."""

    pooling: tuple[str, ...] = ("mean",)
    normalize: bool = False
    max_seq_length: int | None = None


def read_head(path: Path) -> Head:
    """The pooling, normalisation and length limit a model directory declares."""
    modules = _read_json(path / "modules.json")
    if not isinstance(modules, list):
        return Head()
    pooling: tuple[str, ...] = ("mean",)
    normalize = False
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            config = _read_json(path / str(module.get("path", "")) / "config.json") or {}
            modes = tuple(mode for key, mode in _POOLING_KEYS.items() if config.get(key))
            unsupported = set(modes) - _SUPPORTED_POOLING
            if unsupported:
                raise ValueError(f"{path}: pooling {sorted(unsupported)} is not supported")
            pooling = modes or ("mean",)
        elif kind == "Normalize":
            normalize = True
        elif kind not in ("Transformer", ""):
            raise ValueError(f"{path}: the sentence-transformers module {kind!r} is not supported")
    st_config = _read_json(path / "sentence_bert_config.json") or {}
    max_len = st_config.get("max_seq_length")
    return Head(pooling, normalize, int(max_len) if isinstance(max_len, int) and max_len > 0 else None)


@dataclass(eq=False)
class EmbeddingModel:
    name: str
    path: Path
    model: Any
    tokenizer: Any
    device: torch.device
    head: Head
    max_length: int
    dimensions: int
    vocab_size: int
    pad_id: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token_ids(self, inputs: list[str] | list[list[int]]) -> list[list[int]]:
        """Each input as the token ids the encoder sees (strings with the tokenizer's special
        tokens); raises :class:`EmbeddingInputError` for one that does not fit."""
        if inputs and isinstance(inputs[0], str):
            ids: list[list[int]] = self.tokenizer(list(inputs), add_special_tokens=True)["input_ids"]
        else:
            ids = [list(map(int, x)) for x in inputs]
        for i, seq in enumerate(ids):
            if len(seq) > self.max_length:
                raise EmbeddingInputError(
                    f"Input {i} has {len(seq)} tokens; this model takes at most {self.max_length}", i
                )
            if any(t >= self.vocab_size for t in seq):
                raise EmbeddingInputError(f"Input {i} has token ids outside this model's vocabulary", i)
        return ids


def _max_length(tokenizer: Any, config: Any, head: Head) -> int:
    limits = [head.max_seq_length, getattr(config, "max_position_embeddings", None)]
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and model_max < _UNBOUNDED:
        limits.append(model_max)
    known = [int(x) for x in limits if isinstance(x, int) and x > 0]
    return min(known) if known else 512


def load_embedding_dir(name: str, path: Path, *, device: torch.device | None = None) -> EmbeddingModel:
    """Load an encoder and its tokenizer from a Hugging Face-layout directory."""
    head = read_head(path)
    device = device or pick_device()
    tokenizer = AutoTokenizer.from_pretrained(path)
    # fp32 everywhere: embeddings are compared across calls, and bf16 would shift them.
    model: Any = AutoModel.from_pretrained(path, dtype=torch.float32)
    model.to(device)
    model.eval()
    hidden = int(model.config.hidden_size)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    log.info("loaded embedding model %s from %s on %s", name, path, device)
    return EmbeddingModel(
        name=name,
        path=path,
        model=model,
        tokenizer=tokenizer,
        device=device,
        head=head,
        max_length=_max_length(tokenizer, model.config, head),
        dimensions=hidden * len(head.pooling),
        vocab_size=int(model.get_input_embeddings().weight.shape[0]),
        pad_id=int(pad),
    )


def pool(states: torch.Tensor, mask: torch.Tensor, head: Head) -> torch.Tensor:
    """One vector per row of ``states`` (batch × tokens × hidden), padding masked out."""
    m = mask.unsqueeze(-1).to(states.dtype)
    lengths = m.sum(dim=1).clamp(min=1e-9)
    parts = []
    for mode in head.pooling:
        if mode == "cls":
            parts.append(states[:, 0])
        elif mode == "max":
            parts.append(states.masked_fill(m == 0, -1e9).max(dim=1).values)
        elif mode == "mean":
            parts.append((states * m).sum(dim=1) / lengths)
        elif mode == "mean_sqrt_len":
            parts.append((states * m).sum(dim=1) / lengths.sqrt())
        elif mode == "lasttoken":
            last = mask.sum(dim=1).long() - 1  # right-padded rows
            parts.append(states[torch.arange(states.shape[0]), last])
    out = torch.cat(parts, dim=-1)
    if head.normalize:
        out = torch.nn.functional.normalize(out, p=2, dim=-1)
    return out


def embed_ids(loaded: EmbeddingModel, ids: list[list[int]], *, max_batch: int = 32) -> list[list[float]]:
    """Vectors of token-id sequences, in their order; run in batches of similar length."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[list[float]] = [[] for _ in ids]
    with loaded.lock, torch.inference_mode():
        for start in range(0, len(order), max_batch):
            rows = order[start : start + max_batch]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), loaded.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                mask[r, : len(ids[i])] = 1
            states = loaded.model(
                input_ids=input_ids.to(loaded.device), attention_mask=mask.to(loaded.device)
            ).last_hidden_state
            vectors = pool(states, mask.to(loaded.device), loaded.head).float().cpu()
            for r, i in enumerate(rows):
                out[i] = vectors[r].tolist()
    return out


@dataclass(eq=False)
class _Job:
    ids: list[list[int]]
    future: asyncio.Future[list[list[float]]]


class EmbeddingEngine:
    """Loaded encoders (the ``max_models`` most recently used) and the thread that runs them."""

    def __init__(self, *, device: str | None = None, max_batch: int = 32, max_models: int = 4) -> None:
        self._device = pick_device(device)
        self._max_batch = max_batch
        self._max_models = max_models
        self._models: OrderedDict[str, EmbeddingModel] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._queues: dict[int, list[_Job]] = {}
        self._drains: dict[int, asyncio.Task[None]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embeddings")

    async def model(self, name: str, path: Path) -> EmbeddingModel:
        """The loaded ``name``, loaded from ``path`` on first use (or when the name now stands
        for another directory)."""
        found = self._models.get(name)
        if found is None or found.path != path:
            async with self._locks.setdefault(name, asyncio.Lock()):
                found = self._models.get(name)
                if found is None or found.path != path:
                    found = await asyncio.to_thread(load_embedding_dir, name, path, device=self._device)
                    self._models[name] = found
        self._models.move_to_end(name)
        while len(self._models) > self._max_models:
            self._models.popitem(last=False)
        return found

    async def embed(self, loaded: EmbeddingModel, ids: list[list[int]]) -> list[list[float]]:
        """Vectors of ``ids``; calls that arrive while a pass runs share the next one."""
        job = _Job(ids, asyncio.get_running_loop().create_future())
        self._queues.setdefault(id(loaded), []).append(job)
        if id(loaded) not in self._drains:
            # A task of its own, not the caller's: a caller that goes away cancels only its wait.
            self._drains[id(loaded)] = asyncio.create_task(self._drain(loaded))
        return await job.future

    async def _drain(self, loaded: EmbeddingModel) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queues[id(loaded)]
        try:
            while queue:
                jobs = _take(queue, self._max_batch)
                merged = [seq for j in jobs for seq in j.ids]
                try:
                    run = functools.partial(embed_ids, loaded, merged, max_batch=self._max_batch)
                    vectors = await loop.run_in_executor(self._executor, run)
                except Exception as exc:  # a failed pass fails its calls, not the next ones
                    log.exception("embedding pass failed")
                    for j in jobs:
                        if not j.future.done():
                            j.future.set_exception(exc)
                    continue
                at = 0
                for j in jobs:
                    if not j.future.done():
                        j.future.set_result(vectors[at : at + len(j.ids)])
                    at += len(j.ids)
        finally:
            del self._queues[id(loaded)]
            del self._drains[id(loaded)]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _take(queue: list[_Job], max_inputs: int) -> list[_Job]:
    """Whole jobs from the front of ``queue``, up to about ``max_inputs`` inputs (at least one)."""
    taken: list[_Job] = []
    count = 0
    while queue and (not taken or count + len(queue[0].ids) <= max(max_inputs, 1)):
        job = queue.pop(0)
        taken.append(job)
        count += len(job.ids)
    return taken
