"""The job directory a training child process reads: ``config.json`` and ``train.jsonl``.

The config is built from what the fine-tune recorded (its resolved hyperparameters) and from
this installation (where its root base model lives, the earlier fine-tune's adapter to continue
from, the training device). It is validated here, with the trainer's own pydantic models, so a
job that cannot run fails at once with a message a user can act on — not after a process
start and a model load. The recorded hyperparameters carry a few values for display only
(``learning_rate_multiplier``, the DPO step estimate); those are dropped, since the trainer's
config rejects keys it does not know.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel as PydanticModel
from pydantic import ValidationError
from sqlalchemy import Connection

from tunepipe.db import base_models
from tunepipe.db import fine_tunes as repo
from tunepipe.domain.fine_tunes import FineTune
from tunepipe.engine.sources import context_window
from tunepipe.services.fine_tunes.files import materialise_adapter
from tunepipe.services.jobs.context import JobFailed
from tunepipe.training.config import TRAIN_FILE, DpoSettings, LoraSettings, SftSettings, TrainingConfig

MAX_SEQ_LEN = 4096
DEFAULT_SEQ_LEN = 2048  # when the model's config does not say


def write_job_dir(
    conn: Connection, home: Path, ft: FineTune, job_dir: Path, *, device: str | None
) -> TrainingConfig:
    """Write ``job_dir`` (replacing an earlier one) for ``ft``; raises :class:`JobFailed`."""
    config = training_config(conn, home, ft, device=device)
    if job_dir.exists():  # an attempt that was handed back keeps its number
        shutil.rmtree(job_dir)
    job_dir.mkdir(parents=True)
    rows = 0
    with (job_dir / TRAIN_FILE).open("wb") as f:
        for _, row in repo.iter_entries(conn, ft.id, "TRAIN"):
            f.write(orjson.dumps(row) + b"\n")
            rows += 1
    if rows == 0:
        raise JobFailed("the fine-tune has no training rows")
    config.write(job_dir)
    return config


def training_config(conn: Connection, home: Path, ft: FineTune, *, device: str | None) -> TrainingConfig:
    """The trainer's config for ``ft`` on this installation."""
    base_path, base_name, init_adapter = _base_model(conn, ft.root_model)
    if ft.parent_id:
        init_adapter = materialise_adapter(conn, home, ft.parent_id)
        if init_adapter is None:
            raise JobFailed("the base fine-tune has no trained adapter")
    hp = ft.hyperparameters
    spec: dict[str, Any] = {
        "base_model_path": str(base_path),
        "base_model_name": base_name,
        "init_adapter_path": str(init_adapter) if init_adapter else None,
        "device": device,
        "max_seq_len": max_seq_len(base_path),
        "lora": _known(hp.get("lora"), LoraSettings),
        "sft": _known(hp.get("sft"), SftSettings),
        "dpo": _known(hp.get("dpo"), DpoSettings),
    }
    if hp.get("seed") is not None:
        spec["seed"] = hp["seed"]
    try:
        return TrainingConfig.model_validate(spec)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise JobFailed(f"invalid training settings: {problems}") from exc


def _base_model(conn: Connection, name: str) -> tuple[Path, str, Path | None]:
    """The root model's directory and name, and the adapter to start from when the registered
    model is itself a LoRA adapter (its registered base is then the root)."""
    model = base_models.find(conn, name)
    if model is None:
        raise JobFailed(f"the base model {name!r} is not registered on this installation")
    init_adapter = None
    if model.kind == "lora":
        init_adapter = Path(model.path)
        base = base_models.find(conn, model.base) if model.base else None
        if base is None:
            raise JobFailed(f"the base model {model.base!r} of the adapter {name!r} is not registered")
        model = base
    path = Path(model.path)
    if not (path / "config.json").is_file():
        raise JobFailed(f"the base model {model.name!r} has no model directory at {path}")
    return path, model.name, init_adapter


def max_seq_len(model_dir: Path) -> int:
    """The longest sequence to train on: the model's context, capped at :data:`MAX_SEQ_LEN`."""
    return min(MAX_SEQ_LEN, context_window(model_dir) or DEFAULT_SEQ_LEN)


def _known(values: Any, model: type[PydanticModel]) -> dict[str, Any]:
    if not isinstance(values, dict):
        return {}
    return {key: value for key, value in values.items() if key in model.model_fields}
