"""One training job, start to finish: read the job directory, train SFT then DPO, save the
adapter and the metrics.

Everything that can be checked without a model (the config, the rows, whether DPO has
preference pairs) is checked before torch does any work, so a bad job fails in a second with a
message a user can act on, not after minutes of loading.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tunepipe.errors import InvalidRequest
from tunepipe.training.config import ADAPTER_DIR, METRICS_FILE, TRAIN_FILE, TrainingConfig
from tunepipe.training.data import read_rows, tokenize_rows
from tunepipe.training.events import EventLog

if TYPE_CHECKING:
    from tunepipe.training.progress import ProgressCallback
    from tunepipe.training.runtime import Runtime


def run_job(job_dir: Path, events: EventLog) -> dict[str, Any]:
    """Train the job in ``job_dir``; returns the metrics (also written to ``metrics.json``)."""
    config = TrainingConfig.load(job_dir)
    rows = read_rows(job_dir / TRAIN_FILE)
    if config.dpo.enabled and not any(row.rejected is not None for row in rows):
        raise InvalidRequest("DPO is enabled but no row has a rejected_message to prefer the output over")
    if not config.base_model_path.is_dir():
        raise InvalidRequest(f"base_model_path {config.base_model_path} is not a directory")

    from tunepipe.training.adapter import build_model, load_tokenizer, save_adapter
    from tunepipe.training.runtime import resolve_runtime, seed_everything

    started = time.perf_counter()
    runtime = resolve_runtime(config)
    seed_everything(config.seed)
    tokenizer = load_tokenizer(config.base_model_path)
    examples = tokenize_rows(tokenizer, rows, config.max_seq_len, dpo=config.dpo.enabled)
    if config.sft.enabled and not examples.sft:
        raise InvalidRequest(f"every row is longer than max_seq_len ({config.max_seq_len} tokens)")
    if config.dpo.enabled and not examples.dpo:
        raise InvalidRequest(
            f"every preference pair is longer than max_seq_len ({config.max_seq_len} tokens)"
        )
    model = build_model(config, runtime)

    metrics: dict[str, Any] = {
        "train_rows": len(rows),
        "rows_skipped_too_long": examples.skipped_too_long,
        "device": runtime.device.type,
        "dtype": runtime.precision,
        "hyperparameters": _hyperparameters(config, runtime),
    }
    tokens, train_seconds = 0, 0.0
    if config.sft.enabled:
        from tunepipe.training.sft import run_sft

        result = run_sft(model, tokenizer, examples.sft, config, runtime, events, job_dir / "sft")
        sft = result.progress
        metrics.update(_stage_metrics("sft", sft))
        if result.stop is not None:
            metrics.update(result.stop.metrics(sft.loss_steps, result.cooldown))
        metrics["train_tokens"] = examples.sft_tokens
        tokens, train_seconds = tokens + sft.tokens, train_seconds + sft.elapsed
    if config.dpo.enabled:
        from tunepipe.training.dpo import run_dpo

        dpo = run_dpo(model, tokenizer, examples.dpo, config, runtime, events, job_dir / "dpo")
        metrics.update(_stage_metrics("dpo", dpo))
        metrics["dpo_rows"] = len(examples.dpo)
        metrics["dpo_reward_margin_first"] = dpo.margins[0] if dpo.margins else None
        metrics["dpo_reward_margin_last"] = dpo.margins[-1] if dpo.margins else None
        metrics["dpo_reward_accuracy_last"] = dpo.accuracies[-1] if dpo.accuracies else None
        metrics.setdefault("train_tokens", examples.dpo_tokens)
        tokens, train_seconds = tokens + dpo.tokens, train_seconds + dpo.elapsed

    save_adapter(model, tokenizer, job_dir / ADAPTER_DIR, config.base_model_name)
    metrics["tokens_per_s"] = round(tokens / train_seconds, 1) if train_seconds > 0 else None
    metrics["runtime_s"] = round(time.perf_counter() - started, 2)
    (job_dir / METRICS_FILE).write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))
    return metrics


def _stage_metrics(stage: str, progress: ProgressCallback) -> dict[str, Any]:
    return {
        f"{stage}_steps": progress.steps,
        f"{stage}_first_loss": progress.losses[0] if progress.losses else None,
        f"{stage}_final_loss": progress.losses[-1] if progress.losses else None,
        f"{stage}_runtime_s": round(progress.elapsed, 2),
    }


def _hyperparameters(config: TrainingConfig, runtime: Runtime) -> dict[str, Any]:
    from tunepipe.training.runtime import batch_split

    resolved: dict[str, Any] = config.model_dump(mode="json", include={"seed", "max_seq_len", "lora"})
    resolved["init_adapter_path"] = str(config.init_adapter_path) if config.init_adapter_path else None
    for stage in ("sft", "dpo"):
        settings = getattr(config, stage)
        if settings.enabled:
            micro, accumulation = batch_split(settings.batch_size, runtime.device)
            resolved[stage] = {
                **settings.model_dump(mode="json"),
                "micro_batch_size": micro,
                "gradient_accumulation_steps": accumulation,
            }
    return resolved
