"""Training jobs for tests: a tiny model that can learn, job directories, and the real child process.

The tiny model of :mod:`engine.tiny` is re-initialised with larger weights: at the default
initialisation scale its frozen embeddings keep every logit near zero, and a LoRA adapter on top
cannot express a confident answer however long it trains. At these scales it learns a 16-row
lookup task exactly within a second of CPU time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from engine.tiny import build_tiny_model

EMBEDDING_STD = 0.3
LINEAR_STD = 0.15

SUBJECTS = ["cat", "dog", "tree", "car", "house", "road", "city", "mat"]
SUBJECTS += ["world", "question", "tool", "weather", "function", "answer", "json", "name"]
ANSWERS = ["alice", "bob", "carol", "paris", "london", "tokyo", "red", "blue"]


def build_learnable_model(out: Path, *, seed: int = 0) -> Path:
    build_tiny_model(out, seed=seed)
    model: Any = AutoModelForCausalLM.from_pretrained(out)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.dim() >= 2:
                std = EMBEDDING_STD if "embed" in name else LINEAR_STD
                weight.copy_(torch.randn(weight.shape, generator=generator) * std)
    model.save_pretrained(out)
    return out


def lookup_rows(*, rejected: bool = False) -> list[dict[str, Any]]:
    """16 rows: a subject word in, a fixed name out (and a wrong name as the rejected answer)."""
    rows = []
    for i, subject in enumerate(SUBJECTS):
        row: dict[str, Any] = {
            "messages": [{"role": "user", "content": subject}],
            "output": {"role": "assistant", "content": ANSWERS[i % 8]},
            "rejected_message": None,
            "tools": None,
            "tool_choice": None,
            "response_format": None,
        }
        if rejected:
            row["rejected_message"] = {"role": "assistant", "content": ANSWERS[(i + 3) % 8]}
        rows.append(row)
    return rows


def write_job(job_dir: Path, base: Path, rows: list[dict[str, Any]], **overrides: Any) -> Path:
    """A job directory as the server writes it; ``overrides`` replace top-level config keys."""
    job_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "base_model_path": str(base),
        "base_model_name": "tiny",
        "init_adapter_path": None,
        "seed": 7,
        "device": "cpu",
        "max_seq_len": 256,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "sft": {
            "enabled": True,
            "num_epochs": 40,
            "learning_rate": 1e-2,
            "batch_size": 8,
            "warmup_ratio": 0.05,
        },
        "dpo": {"enabled": False},
    }
    config.update(overrides)
    (job_dir / "config.json").write_text(json.dumps(config))
    (job_dir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return job_dir


@dataclass
class Finished:
    returncode: int
    events: list[dict[str, Any]]
    stdout: str
    stderr: str

    @property
    def metrics(self) -> dict[str, Any]:
        assert self.events[-1]["event"] == "done", self.stderr[-3000:]
        return dict(self.events[-1]["metrics"])

    def losses(self, stage: str) -> list[float]:
        return [e["loss"] for e in self.events if e["event"] == "progress" and e["stage"] == stage]


def run_training(job_dir: Path) -> Finished:
    """``python -m tunepipe.training job_dir``, as the job system runs it."""
    # One intra-op thread: on a 0.1M-parameter model a second one costs more than it gains.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tunepipe.training", str(job_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    events = [json.loads(line) for line in done.stdout.splitlines()]  # every line must be JSON
    return Finished(done.returncode, events, done.stdout, done.stderr)
