"""Merging a LoRA adapter into its base model: full weights for "download merged weights".

The merge is done in fp32 whatever the requested output precision, and cast once at the end,
so that a bf16 download is the rounding of the exact merge rather than the sum of rounded
parts. The result is written next to ``out_dir`` first and renamed into place, so a crash
never leaves a half-written model where a complete one is expected.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def merge_adapter(base_model_path: Path, adapter_path: Path, out_dir: Path, dtype: str = "fp32") -> Path:
    """Write ``base + adapter`` as one model in Hugging Face layout, with the tokenizer.

    Args:
        base_model_path: The base model directory the adapter was trained on.
        adapter_path: A PEFT LoRA adapter directory.
        out_dir: Where the merged model goes (replaced if it exists).
        dtype: Precision of the saved weights: ``fp32``, ``bf16`` or ``fp16``.

    Returns:
        ``out_dir``.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)}, not {dtype!r}")
    base: Any = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    merged: Any = PeftModel.from_pretrained(base, adapter_path).merge_and_unload()
    merged.to(dtypes[dtype])
    # The adapter directory carries the tokenizer the adapter was trained with.
    tokenizer_source = adapter_path if (adapter_path / "tokenizer_config.json").is_file() else base_model_path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)

    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
