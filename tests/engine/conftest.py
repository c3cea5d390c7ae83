"""Fixtures for the local engine: tiny models built on the spot, their in-process Hugging Face
reference outputs, and a gateway with them registered as ``local:tiny`` / ``local:tiny-lora``.

The tiny model of :mod:`engine.tiny` is re-initialised with larger weights here: at the default
initialisation scale a random model answers every prompt with the same token, which would let a
batching bug (rows mixed up, wrong positions, wrong padding) pass unnoticed. Tokens that decode to
invalid UTF-8 or control characters get zero embeddings, so greedy text is plain and printable and
compares exactly with ``tokenizer.decode``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import Gateway
from engine.tiny import build_tiny_model

WEIGHT_STD = 0.3

Messages = list[Any]  # OpenAI message dicts (typed loosely for the SDK's TypedDicts)


def build_test_model(out: Path, *, seed: int = 0) -> Path:
    """A tiny Llama whose greedy output depends on the prompt (see the module docstring)."""
    build_tiny_model(out, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model: Any = AutoModelForCausalLM.from_pretrained(out)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() >= 2:
                weight.copy_(torch.randn(weight.shape, generator=generator) * WEIGHT_STD)
        embeddings = model.get_input_embeddings().weight
        for token in range(len(tokenizer)):
            text = tokenizer.decode([token])
            unprintable = "\ufffd" in text or any((ord(c) < 32 and c != "\n") or ord(c) == 127 for c in text)
            special = token in tokenizer.all_special_ids
            if token != tokenizer.eos_token_id and (unprintable or special):
                embeddings[token] = 0
    model.save_pretrained(out)
    return out


def build_lora(base_dir: Path, out: Path, *, seed: int = 1) -> Path:
    """A LoRA adapter with random (non-zero) weights on q/v projections of ``base_dir``."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # random init at a scale that visibly changes greedy output
        for name, weight in peft_model.named_parameters():
            if "lora_" in name:
                weight.copy_(torch.randn_like(weight) * 0.5)
    peft_model.save_pretrained(str(out))
    return out


class Reference:
    """Greedy decoding with plain ``model.generate``, in this process: what the engine must match."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self._cache: dict[tuple[str, int], tuple[str, list[int]]] = {}

    def prompt_ids(self, messages: Messages) -> list[int]:
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        return [int(i) for i in ids]

    def generate_ids(self, prompt: list[int], max_tokens: int) -> list[int]:
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                do_sample=False,
                max_new_tokens=max_tokens,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return [int(t) for t in out[0, len(prompt) :]]

    def greedy(self, messages: Messages, max_tokens: int) -> str:
        """The text of the greedy completion (special tokens skipped, as the server does)."""
        return self.greedy_with_ids(messages, max_tokens)[0]

    def greedy_with_ids(self, messages: Messages, max_tokens: int) -> tuple[str, list[int]]:
        key = (repr(messages), max_tokens)
        if key not in self._cache:
            ids = self.generate_ids(self.prompt_ids(messages), max_tokens)
            self._cache[key] = (self.tokenizer.decode(ids, skip_special_tokens=True), ids)
        return self._cache[key]


def user(text: str) -> Messages:
    return [{"role": "user", "content": text}]


PROMPTS = [
    "hello",
    "the cat sat on a mat",
    "what is the name of the city",
    "bob",
    "alice is thirty and bob is forty",
    "where is the red house in london",
    "yes",
    "the big dog ran to the small green tree and the blue car was on the road",
]
"""Prompts of different lengths."""


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """In-process torch work here is on models of 0.1M parameters, where a second intra-op
    thread costs more than it gains (10x slower on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="session")
def other_tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model with the same tokenizer and different weights."""
    return build_test_model(tmp_path_factory.mktemp("tiny-other"), seed=1)


@pytest.fixture(scope="session")
def lora_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lora(tiny_dir, tmp_path_factory.mktemp("tiny-lora"))


@pytest.fixture(scope="session")
def other_lora_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lora(tiny_dir, tmp_path_factory.mktemp("tiny-lora-other"), seed=2)


@functools.cache
def _reference(path: Path, adapter: Path | None = None) -> Reference:
    tokenizer = AutoTokenizer.from_pretrained(path)
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return Reference(model, tokenizer)


@pytest.fixture(scope="session")
def tiny_ref(tiny_dir: Path) -> Reference:
    return _reference(tiny_dir)


@pytest.fixture(scope="session")
def other_ref(other_tiny_dir: Path) -> Reference:
    return _reference(other_tiny_dir)


@pytest.fixture(scope="session")
def lora_ref(tiny_dir: Path, lora_dir: Path) -> Reference:
    return _reference(tiny_dir, lora_dir)


@pytest.fixture(scope="session")
def other_lora_ref(tiny_dir: Path, other_lora_dir: Path) -> Reference:
    return _reference(tiny_dir, other_lora_dir)


def _register(gateway: Gateway, *args: str) -> None:
    done = gateway.cli("base-models", "add", *args, check=False)
    if done.returncode != 0 and "already registered" not in done.stdout:
        raise RuntimeError(done.stdout + done.stderr)


@pytest.fixture(scope="session")
def local(gateway: Gateway, tiny_dir: Path, lora_dir: Path) -> Gateway:
    """The gateway (each backend) with ``local:tiny`` and the adapter ``local:tiny-lora``."""
    _register(gateway, str(tiny_dir), "--name", "tiny")
    _register(gateway, str(lora_dir), "--name", "tiny-lora", "--base", "tiny")
    return gateway


def wait_for_log(gateway: Gateway, **params: Any) -> dict[str, Any]:
    """The newest logged call matching ``params`` (the log writer runs in the background)."""
    deadline = time.monotonic() + 10
    with httpx.Client(
        base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.key}"}, timeout=10
    ) as h:
        while True:
            r = h.get("/logs", params=params)
            assert r.status_code == 200, r.text
            data = r.json()["data"]
            if data:
                return dict(data[0])
            if time.monotonic() > deadline:
                raise AssertionError(f"no logged call matches {params}")
            time.sleep(0.1)
