"""Where and how a job trains: device, precision, batch split, and the trainer arguments every
stage shares.

Both stages run under the same rules so that a job is reproducible and quiet: seeds everywhere
(``seed`` and ``data_seed``), no dataloader workers, no checkpoints, no reporting integrations,
no progress bars, a log entry after every optimizer step. TRL's defaults assume a GPU (bf16 on,
gradient checkpointing on); every such argument is set here explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunepipe.training.config import TrainingConfig

# Rows per forward pass. On a CPU, larger micro batches stop paying off well before 8 rows of a
# few hundred tokens; on a GPU the effective batch is usually small enough to fit whole.
_MAX_MICRO_BATCH = {"cpu": 8, "cuda": 16}


@dataclass(frozen=True, slots=True)
class Runtime:
    """The resolved device and numeric precision of a job."""

    device: torch.device
    precision: str  # "fp32" | "bf16": bf16 means autocast, the trainable weights stay fp32
    load_dtype: torch.dtype

    @property
    def on_cpu(self) -> bool:
        return self.device.type == "cpu"


def resolve_runtime(config: TrainingConfig) -> Runtime:
    """Pick the device and precision for ``config``.

    On CUDA the base model is loaded in bf16 when the card supports it. On a CPU the weights
    stay fp32 and the forward and backward passes run under bf16 autocast when the CPU has
    native bf16 (AVX512-BF16 or AMX): measured with SmolLM2-135M LoRA on 2 AMD EPYC cores, 278
    tok/s against 134 in fp32 (see bench/train.py). ``TUNEPIPE_TRAIN_CPU_BF16=0`` or ``=1``
    overrides the choice.
    """
    name = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device 'cuda' but no CUDA device is available")
    device = torch.device(name)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Runtime(device, "bf16", torch.bfloat16)
        return Runtime(device, "fp32", torch.float32)
    override = os.environ.get("TUNEPIPE_TRAIN_CPU_BF16")
    bf16 = override == "1" if override in ("0", "1") else _cpu_has_bf16()
    return Runtime(device, "bf16" if bf16 else "fp32", torch.float32)


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def batch_split(batch_size: int, device: torch.device) -> tuple[int, int]:
    """(micro batch, gradient accumulation steps) whose product is exactly ``batch_size``."""
    cap = _MAX_MICRO_BATCH.get(device.type, 8)
    micro = max(d for d in range(1, min(batch_size, cap) + 1) if batch_size % d == 0)
    return micro, batch_size // micro


def shared_args(
    config: TrainingConfig,
    runtime: Runtime,
    output_dir: Path,
    *,
    batch_size: int,
    learning_rate: float,
    num_epochs: float,
) -> dict[str, Any]:
    """Keyword arguments common to ``SFTConfig`` and ``DPOConfig``."""
    micro, accumulation = batch_split(batch_size, runtime.device)
    return {
        "output_dir": str(output_dir),
        "seed": config.seed,
        "data_seed": config.seed,
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
        "learning_rate": learning_rate,
        "num_train_epochs": num_epochs,
        "use_cpu": runtime.on_cpu,
        "bf16": runtime.precision == "bf16",
        "fp16": False,
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "logging_strategy": "steps",
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": False,
        "remove_unused_columns": False,
    }


def warmup(ratio: float) -> float:
    """``warmup_steps`` for a warmup ratio (transformers reads a float below 1 as a ratio)."""
    return min(ratio, 0.99)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch before the adapter is initialised."""
    from transformers import set_seed

    set_seed(seed)
