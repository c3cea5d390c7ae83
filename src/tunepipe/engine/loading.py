"""Loading base models and LoRA adapters into memory.

A base model is always a local directory in Hugging Face layout by the time it is loaded: hub
ids are fetched into ``TUNEPIPE_HOME`` first and GGUF files are de-quantised once into such a
directory (see :mod:`tunepipe.engine.sources`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

log = logging.getLogger(__name__)


def pick_device(preferred: str | None = None) -> torch.device:
    if preferred:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    # bf16 halves memory traffic on GPUs; on CPUs fp32 matmuls are the fast path.
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@dataclass(eq=False)
class LoadedModel:
    """A model ready to generate, with everything the decode loop needs to know about it."""

    name: str
    path: Path
    model: Any  # PreTrainedModel, or a PeftModel once an adapter is attached
    tokenizer: Any
    device: torch.device
    eos_ids: frozenset[int]
    max_positions: int | None
    nbytes: int
    adapters: dict[str, Path] = field(default_factory=dict)
    constraint_factory: Any = None  # built on first constrained request
    # Held by every forward pass and by adapter changes: attaching an adapter rewrites the
    # model's modules in place, which a forward pass on the engine thread must never see half done.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])


def _eos_ids(tokenizer: Any, path: Path) -> frozenset[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    try:
        gen = GenerationConfig.from_pretrained(path)
    except OSError:
        gen = None
    if gen is not None and gen.eos_token_id is not None:
        eos = gen.eos_token_id
        ids.update(int(e) for e in (eos if isinstance(eos, list) else [eos]))
    # Chat templates end turns with their own marker, which some configs do not list as EOS.
    for marker in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
        token_id = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
            ids.add(token_id)
    return frozenset(ids)


def load_model_dir(name: str, path: Path, *, device: torch.device | None = None) -> LoadedModel:
    """Load a causal LM and its tokenizer from a Hugging Face-layout directory."""
    device = device or pick_device()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(device))
    model.to(device)
    model.eval()
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    max_positions = getattr(model.config, "max_position_embeddings", None)
    log.info("loaded %s from %s on %s (%.0f MB)", name, path, device, nbytes / 1e6)
    return LoadedModel(
        name=name,
        path=path,
        model=model,
        tokenizer=tokenizer,
        device=device,
        eos_ids=_eos_ids(tokenizer, path),
        max_positions=int(max_positions) if max_positions else None,
        nbytes=nbytes,
    )


def attach_adapter(loaded: LoadedModel, adapter: str, path: Path) -> None:
    """Load a LoRA adapter next to the others on this base model (selected per request)."""
    from peft import PeftModel

    with loaded.lock:
        if loaded.adapters.get(adapter) == path:
            return
        if adapter in loaded.adapters:  # the name was registered again for another adapter
            loaded.model.delete_adapter(adapter)
            del loaded.adapters[adapter]
        if not isinstance(loaded.model, PeftModel):
            loaded.model = PeftModel.from_pretrained(loaded.model, path, adapter_name=adapter)
            loaded.model.eval()
        else:
            loaded.model.load_adapter(path, adapter_name=adapter)
        loaded.adapters[adapter] = path


def detach_adapter(loaded: LoadedModel, adapter: str) -> None:
    """Remove an adapter. The last one goes with PEFT's wrapper altogether: PEFT cannot run a
    model whose every adapter was deleted (its active adapter is gone), so the plain base model
    is put back."""
    with loaded.lock:
        if adapter not in loaded.adapters:
            return
        if len(loaded.adapters) == 1:
            loaded.model = loaded.model.unload()
            loaded.model.eval()
        else:
            loaded.model.delete_adapter(adapter)
        del loaded.adapters[adapter]
