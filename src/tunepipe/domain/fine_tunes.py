"""What a fine-tune is, without I/O: its status lifecycle, its slug, and the hyperparameters a
training run gets from what the caller asked for.

Lifecycle (spec B.3)::

    PENDING ──► QUEUED ──► TRAINING ──► DEPLOYED
       │          │           │
       └──────────┴───────────┴──► ERROR  (errorMessage says why; a cancelled run is an ERROR
                                            "cancelled")

PENDING: accepted, its training rows being copied (inside the transaction that creates it, so
nobody sees it); QUEUED: waiting for a worker; TRAINING: a worker's training process runs;
DEPLOYED: served at ``openpipe:<slug>``. After PENDING the status is never written on its own: it
follows the model's ``train`` job (:func:`follow_job`), in the transaction that changes the job.

Defaults follow OpenPipe's 2024 trainer (spec F): LoRA r 8, alpha 16, dropout 0.05, learning rate
2e-4 times ``learning_rate_multiplier``, cosine schedule with about 10 warm-up steps, an
effective batch of 8, and ``epochs = clamp(round(10,000 / training rows), 1, 10)`` — which here
is only the upper bound: when the caller sets no ``num_epochs`` (and the dataset can spare a
validation slice), training stops early once the loss on rows held out from TRAIN stops
improving, after a cool-down on every row (:data:`EARLY_STOPPING`;
``tunepipe.training.early_stopping``). Epochs the caller sets
are trained in full. Preference
tuning (DPO, after SFT) defaults to one epoch at 5e-5 with beta 0.1; ``adapter_weight`` — which
OpenPipe never documented — weighs the SFT term tunepipe adds to the DPO loss (it keeps DPO from
collapsing at high learning rates).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tunepipe.domain.jobs import CANCELLED_MESSAGE, Job, JobStatus


class FineTuneStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    TRAINING = "TRAINING"
    DEPLOYED = "DEPLOYED"
    ERROR = "ERROR"


UNFINISHED = frozenset({FineTuneStatus.PENDING, FineTuneStatus.QUEUED, FineTuneStatus.TRAINING})

_FOLLOWS = {
    JobStatus.QUEUED: FineTuneStatus.QUEUED,
    JobStatus.RUNNING: FineTuneStatus.TRAINING,
    JobStatus.DONE: FineTuneStatus.DEPLOYED,
    JobStatus.ERROR: FineTuneStatus.ERROR,
    JobStatus.CANCELLED: FineTuneStatus.ERROR,
}


@dataclass(frozen=True, slots=True)
class FineTune:
    id: str
    project_id: str
    slug: str
    dataset_id: str | None
    provider: str
    base_model: str
    root_model: str
    parent_id: str | None
    status: str
    error_message: str | None
    description: str | None
    default_temperature: float | None
    training_config: dict[str, Any]
    hyperparameters: dict[str, Any]
    pruning_rule_ids: list[str]
    metrics: dict[str, Any] | None
    train_rows: int
    test_rows: int
    created_at: int
    updated_at: int
    training_started_at: int | None
    training_finished_at: int | None


@dataclass(frozen=True, slots=True)
class TestOutput:
    entry_id: str
    output: dict[str, Any] | None
    finish_reason: str | None
    error_message: str | None
    exact_match: bool | None
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True, slots=True)
class DatasetRows:
    """What a new fine-tune would train on: entries of its dataset by split."""

    train: int
    test: int
    train_preference: int  # TRAIN entries with a rejected_message (preference pairs)


@dataclass(frozen=True, slots=True)
class Following:
    """What a fine-tune shows of its train job: its status and message, when training started
    and ended (kept from the first start), and, once deployed, the run's metrics."""

    status: FineTuneStatus
    error_message: str | None
    started_at: int | None
    finished_at: int | None
    metrics: dict[str, Any] | None


def follow_job(job: Job) -> Following:
    """The fine-tune's side of its ``train`` job as the job now is."""
    status = _FOLLOWS[job.status]
    message = None
    if job.status is JobStatus.ERROR:
        message = job.error_message
    elif job.status is JobStatus.CANCELLED:
        message = CANCELLED_MESSAGE
    done = job.status is JobStatus.DONE
    return Following(
        status=status,
        error_message=message,
        started_at=job.started_at if job.status is JobStatus.RUNNING else None,
        finished_at=job.finished_at if done else None,
        metrics=job.result if done else None,
    )


def test_set_summary(outputs: Sequence[TestOutput]) -> dict[str, Any]:
    """The metrics a fine-tune records of its test set: rows, share of exact matches (None
    without rows; a row whose generation failed is a miss), errors."""
    n = len(outputs)
    matches = sum(1 for o in outputs if o.exact_match)
    return {
        "test_rows": n,
        "test_exact_match": matches / n if n else None,
        "test_errors": sum(1 for o in outputs if o.error_message is not None),
    }


def progress_view(job: Job | None) -> dict[str, Any]:
    """A fine-tune's training progress: its job's (stage, step, total steps, loss, ETA, …)."""
    return dict(job.progress) if job is not None else {}


SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
SLUG_RULE = (
    "Slugs are 1-200 letters, digits, `.`, `_` or `-`, starting with a letter or digit and not with "
    "`moa-` (mixture-of-agents models are served there)"
)

MIN_TRAIN_ROWS = 10
"""Fewer TRAIN rows than this cannot make a useful model (OpenPipe refused tiny datasets too)."""

SFT_LEARNING_RATE = 2e-4
DPO_LEARNING_RATE = 5e-5
DEFAULT_BATCH = 8
WARMUP_STEPS = 10
DEFAULT_SEED = 42
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"}
EARLY_STOPPING = {
    "validation_share": 0.1,
    "min_validation_rows": 4,
    "max_validation_rows": 100,
    "evals_per_epoch": 2,
    "patience": 2,
    "min_improvement": 0.1,
    "cooldown_share": 0.2,
    "cooldown_min_epochs": 1.0,
    "cooldown_shape": "cosine",
    "good_loss": 0.02,
}
MIN_ROWS_FOR_EARLY_STOPPING = 40  # ten validation rows' worth of the minimum: below it, no slice


def check_slug(slug: str) -> bool:
    return bool(SLUG.match(slug)) and not slug.lower().startswith("moa-")


def default_epochs(train_rows: int) -> float:
    return float(min(10, max(1, round(10_000 / max(1, train_rows)))))


def _steps(rows: int, batch: int, epochs: float) -> int:
    return max(1, math.ceil(math.ceil(rows / batch) * epochs))


def resolve_hyperparameters(
    *,
    enable_sft: bool,
    enable_preference: bool,
    sft: dict[str, Any],
    preference: dict[str, Any],
    train_rows: int,
    preference_rows: int,
    seed: int = DEFAULT_SEED,
    early_stopping: bool = True,
) -> dict[str, Any]:
    """The full set of hyperparameters a run trains with (recorded with the model).

    ``sft`` and ``preference`` hold the caller's values under OpenPipe's names
    (``batch_size``, ``learning_rate_multiplier``, ``num_epochs``; ``variant``,
    ``training_beta``, ``adapter_weight``); missing ones get the defaults above. Early stopping
    applies when ``early_stopping`` allows it, the caller chose no epochs, and there are enough
    rows to hold some out.
    """
    batch = sft.get("batch_size")
    sft_batch = min(DEFAULT_BATCH, max(1, train_rows)) if batch in (None, "auto") else int(batch)
    sft_epochs = float(sft.get("num_epochs") or default_epochs(train_rows))
    stop_early = early_stopping and not sft.get("num_epochs") and train_rows >= MIN_ROWS_FOR_EARLY_STOPPING
    sft_steps = _steps(train_rows, sft_batch, sft_epochs)
    pref_batch = min(DEFAULT_BATCH, max(1, preference_rows))
    pref_epochs = float(preference.get("num_epochs") or 1.0)
    pref_steps = _steps(preference_rows, pref_batch, pref_epochs) if preference_rows else 0
    return {
        "seed": seed,
        "lora": dict(LORA),
        "sft": {
            "enabled": enable_sft,
            "num_epochs": sft_epochs,
            "learning_rate": SFT_LEARNING_RATE * float(sft.get("learning_rate_multiplier") or 1.0),
            "learning_rate_multiplier": float(sft.get("learning_rate_multiplier") or 1.0),
            "batch_size": sft_batch,
            "warmup_ratio": min(0.1, WARMUP_STEPS / sft_steps),
            # Early stopping cools down from a constant rate when it stops (training/early_stopping.py).
            "lr_scheduler": "constant_with_warmup" if stop_early else "cosine",
            "early_stopping": dict(EARLY_STOPPING) if stop_early else None,
        },
        "dpo": {
            "enabled": enable_preference,
            "variant": preference.get("variant") or "DPO",
            "num_epochs": pref_epochs,
            "learning_rate": DPO_LEARNING_RATE * float(preference.get("learning_rate_multiplier") or 1.0),
            "learning_rate_multiplier": float(preference.get("learning_rate_multiplier") or 1.0),
            "batch_size": pref_batch,
            "beta": float(preference.get("training_beta") or 0.1),
            "sft_weight": float(
                preference["adapter_weight"] if preference.get("adapter_weight") is not None else 1.0
            ),
            "steps": pref_steps,
        },
    }
