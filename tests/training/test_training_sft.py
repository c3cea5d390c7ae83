"""SFT through the real child process: it learns the task, reports well-formed events, is
reproducible, and leaves an adapter that PEFT, the engine and the merger all load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from training.jobs import Finished, lookup_rows, run_training, write_job
from tunepipe.engine.chat_format import render_prompt
from tunepipe.engine.loading import attach_adapter, load_model_dir
from tunepipe.training.merge import merge_adapter


def greedy_answers(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Greedy completions of each row's prompt, rendered the way serving renders it."""
    answers = []
    for row in rows:
        prompt = render_prompt(tokenizer, {"messages": row["messages"]})
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                do_sample=False,
                max_new_tokens=8,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        answers.append(tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True))
    return answers


def test_sft_events_well_formed(sft_job: tuple[Path, Finished]) -> None:
    job, done = sft_job
    assert done.returncode == 0, done.stderr[-3000:]
    start, *progress, last = done.events
    assert start == {"event": "start", "stage": "sft", "total_steps": 80, "rows": 16}
    assert [e["step"] for e in progress] == list(range(1, 81))
    for event in progress:
        assert set(event) == {
            "event", "stage", "step", "total_steps", "loss", "learning_rate", "epoch", "eta_s", "tokens_per_s"
        }  # fmt: skip
        assert event["event"] == "progress" and event["total_steps"] == 80
    assert last["event"] == "done"
    metrics = last["metrics"]
    assert (
        metrics["sft_steps"] == 80 and metrics["train_rows"] == 16 and metrics["rows_skipped_too_long"] == 0
    )
    assert metrics["device"] == "cpu" and metrics["train_tokens"] > 0 and metrics["tokens_per_s"] > 0
    assert json.loads((job / "metrics.json").read_text()) == metrics
    logged = [json.loads(line) for line in (job / "training_log.jsonl").read_text().splitlines()]
    assert logged == done.events


def test_sft_loss_falls(sft_job: tuple[Path, Finished]) -> None:
    _, done = sft_job
    metrics = done.metrics
    assert metrics["sft_final_loss"] < 0.1 * metrics["sft_first_loss"]
    assert metrics["sft_final_loss"] < 0.2


def test_sft_adapter_answers_training_targets(sft_job: tuple[Path, Finished], learnable_dir: Path) -> None:
    job, _ = sft_job
    tokenizer = AutoTokenizer.from_pretrained(job / "adapter")
    base: Any = AutoModelForCausalLM.from_pretrained(learnable_dir)
    before = greedy_answers(base, tokenizer, lookup_rows())
    model = PeftModel.from_pretrained(base, job / "adapter").eval()
    rows = lookup_rows()
    after = greedy_answers(model, tokenizer, rows)
    targets = [row["output"]["content"] for row in rows]
    assert sum(a == t for a, t in zip(after, targets, strict=True)) >= 14, after
    assert sum(b == t for b, t in zip(before, targets, strict=True)) <= 2  # it was learned, not there already


def test_sft_adapter_config_names_base(sft_job: tuple[Path, Finished]) -> None:
    job, _ = sft_job
    config = json.loads((job / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny"
    assert (job / "adapter" / "adapter_model.safetensors").is_file()
    assert (job / "adapter" / "tokenizer_config.json").is_file()


def test_sft_adapter_attaches_to_engine(sft_job: tuple[Path, Finished], learnable_dir: Path) -> None:
    job, _ = sft_job
    loaded = load_model_dir("tiny", learnable_dir, device=torch.device("cpu"))
    attach_adapter(loaded, "tuned", job / "adapter")
    assert loaded.adapters == {"tuned": job / "adapter"}


def test_sft_same_seed_same_losses(
    sft_job: tuple[Path, Finished], learnable_dir: Path, tmp_path: Path
) -> None:
    _, first = sft_job
    again = run_training(write_job(tmp_path / "again", learnable_dir, lookup_rows()))
    assert again.losses("sft") == first.losses("sft")


def test_merge_adapter_matches_base_plus_adapter(
    sft_job: tuple[Path, Finished], learnable_dir: Path, tmp_path: Path
) -> None:
    job, _ = sft_job
    merged_dir = merge_adapter(learnable_dir, job / "adapter", tmp_path / "merged")
    merged: Any = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(learnable_dir), job / "adapter"
    )
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = torch.tensor([render_prompt(tokenizer, {"messages": [{"role": "user", "content": "cat"}]})])
    with torch.inference_mode():
        expected = with_adapter.eval()(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not (merged_dir / "adapter_config.json").exists()
