"""The trainable model: a base model with a LoRA adapter, fresh or continued, and how the
result is saved.

The adapter is created here rather than by the trainers (``peft_config=``) so both stages
train the same ``PeftModel``: SFT first, then DPO on the SFT-trained weights. The saved
``adapter_config.json`` names the base by its public name (``base_model_name``), not the local
path it was loaded from, so vLLM's ``--lora-modules`` and the engine can find the base.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunepipe.training.config import TrainingConfig
from tunepipe.training.runtime import Runtime

ADAPTER_NAME = "default"


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(config: TrainingConfig, runtime: Runtime) -> Any:
    """The base model from ``base_model_path`` with a trainable LoRA adapter on ``runtime.device``."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base: Any = AutoModelForCausalLM.from_pretrained(config.base_model_path, dtype=runtime.load_dtype)
    base.to(runtime.device)
    if config.init_adapter_path is not None:
        if not (config.init_adapter_path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"no LoRA adapter at init_adapter_path {config.init_adapter_path}")
        return PeftModel.from_pretrained(base, config.init_adapter_path, is_trainable=True)
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
        bias="none",
    )
    return get_peft_model(base, lora)


def save_adapter(model: Any, tokenizer: Any, out: Path, base_model_name: str) -> Path:
    """Write the trained adapter (only it: DPO adds a frozen reference copy) and the tokenizer."""
    out.mkdir(parents=True, exist_ok=True)
    # No embedding layers are trained; "auto" would look the base up by name, maybe on the hub.
    model.save_pretrained(str(out), selected_adapters=[ADAPTER_NAME], save_embedding_layers=False)
    tokenizer.save_pretrained(str(out))
    # Saved with the local path it was loaded from; the adapter is published under the base's name.
    config_path = out / "adapter_config.json"
    saved = json.loads(config_path.read_text())
    saved["base_model_name_or_path"] = base_model_name
    config_path.write_text(json.dumps(saved, indent=2))
    return out
