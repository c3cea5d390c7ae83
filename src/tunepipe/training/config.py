"""The job's ``config.json``: what the server writes and the training child process reads.

Pydantic models, importable without torch, because the server builds and dumps them when it
writes a job directory. Unknown keys are rejected: the two sides are one contract, and a
misspelt hyperparameter silently falling back to its default would train the wrong thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

CONFIG_FILE = "config.json"
TRAIN_FILE = "train.jsonl"
ADAPTER_DIR = "adapter"
LOG_FILE = "training_log.jsonl"
METRICS_FILE = "metrics.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSettings(_Strict):
    """The LoRA adapter's shape (ignored when continuing from ``init_adapter_path``)."""

    r: PositiveInt = 8
    alpha: PositiveInt = 16
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class EarlyStopping(_Strict):
    """Stop SFT once the loss on rows held out from training stops improving.

    ``validation_share`` of the rows (at least ``min_validation_rows``, at most
    ``max_validation_rows``) are set aside, chosen with the job's seed, and not trained on in the
    first phase. Their loss is measured ``evals_per_epoch`` times an epoch; an evaluation that
    does not beat the best so far by ``min_improvement`` (a share of it) counts against
    ``patience``, and when patience runs out (or the loss is down to ``good_loss``) the first
    phase ends, the adapter goes back to its best evaluation's weights, and a cool-down on every
    row (held-out ones included, repeated for the epochs they missed) takes the learning rate to
    zero along ``cooldown_shape`` over ``cooldown_share`` of the steps trained so far, and at
    least ``cooldown_min_epochs`` passes over those rows.
    ``num_epochs`` stays the upper bound.
    """

    validation_share: float = Field(default=0.1, gt=0, lt=1)
    min_validation_rows: PositiveInt = 4
    max_validation_rows: PositiveInt = 100
    evals_per_epoch: PositiveInt = 2
    patience: PositiveInt = 2
    min_improvement: float = Field(default=0.1, ge=0, lt=1)
    cooldown_share: float = Field(default=0.2, ge=0, le=1)
    cooldown_min_epochs: float = Field(default=1.0, ge=0)
    cooldown_shape: Literal["cosine", "linear"] = "cosine"
    good_loss: float = Field(default=0.02, ge=0)


class SftSettings(_Strict):
    """Supervised fine-tuning on the final assistant message of every row."""

    enabled: bool = True
    num_epochs: PositiveFloat = 3.0
    learning_rate: PositiveFloat = 2e-4
    batch_size: PositiveInt = 8
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)
    lr_scheduler: str = "cosine"
    early_stopping: EarlyStopping | None = None


class DpoSettings(_Strict):
    """Preference tuning on rows that carry a ``rejected_message``, after SFT."""

    enabled: bool = False
    variant: Literal["DPO", "APO Zero"] = "DPO"
    num_epochs: PositiveFloat = 1.0
    learning_rate: PositiveFloat = 2e-5
    batch_size: PositiveInt = 8
    beta: PositiveFloat = 0.1
    # Weight of an NLL term on the chosen answer; plain DPO collapsed at high learning rates.
    sft_weight: float = Field(default=1.0, ge=0)


class TrainingConfig(_Strict):
    """Everything one training job needs besides its data (``train.jsonl``)."""

    base_model_path: Path
    base_model_name: str
    init_adapter_path: Path | None = None
    seed: int = 42
    device: Literal["cpu", "cuda"] | None = None
    max_seq_len: PositiveInt = 2048
    lora: LoraSettings = Field(default_factory=LoraSettings)
    sft: SftSettings = Field(default_factory=SftSettings)
    dpo: DpoSettings = Field(default_factory=DpoSettings)

    @model_validator(mode="after")
    def _some_stage(self) -> TrainingConfig:
        if not (self.sft.enabled or self.dpo.enabled):
            raise ValueError("enable at least one of sft and dpo")
        return self

    @classmethod
    def load(cls, job_dir: Path) -> TrainingConfig:
        """Read and validate ``<job_dir>/config.json``."""
        return cls.model_validate_json((job_dir / CONFIG_FILE).read_bytes())

    def write(self, job_dir: Path) -> Path:
        """Write this config as ``<job_dir>/config.json``; returns the file's path."""
        path = job_dir / CONFIG_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path
