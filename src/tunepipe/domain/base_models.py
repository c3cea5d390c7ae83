"""A base model registered on this installation: what the local engine loads for
``local:<name>`` and what fine-tunes train on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    name: str
    source: str  # what the user gave: hub id, directory or .gguf path
    path: str  # the Hugging Face-layout directory that is loaded
    kind: str  # hub | dir | gguf | lora
    created_at: int
    base: str | None = None  # for a LoRA adapter: the registered base model it applies to
