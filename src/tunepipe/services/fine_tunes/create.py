"""Creating a fine-tune (spec A.4 ``POST /models``, B.3, B.4, B.11): validate the request, copy
what training needs, queue the job — in one transaction.

Everything checkable is checked before any row is written — provider, slug, hyperparameters
(the deprecated flat ``hyperparameters`` folded into the SFT and preference settings), dataset,
pruning rules, base model, row counts. Then, in this order: the model row (PENDING), copies of
the selected pruning rules (the model keeps them however the dataset's rules change later), a
snapshot of the dataset's entries with those rules applied to their inputs (never to the
outputs), and a ``train`` job, which the model follows from then on (QUEUED). A failure at any
step rolls all of it back: no half-made model is ever left behind, and no worker sees a job
before its rows are there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from tunepipe.db import base_models
from tunepipe.db import datasets as dataset_repo
from tunepipe.db import fine_tunes as repo
from tunepipe.db import pruning_rules as rule_repo
from tunepipe.domain.clock import now_ms
from tunepipe.domain.datasets import EntryFilter
from tunepipe.domain.fine_tunes import (
    MIN_TRAIN_ROWS,
    SLUG_RULE,
    FineTune,
    FineTuneStatus,
    check_slug,
    resolve_hyperparameters,
)
from tunepipe.domain.ids import uuid7
from tunepipe.domain.jobs import JobKind
from tunepipe.domain.projects import Principal
from tunepipe.domain.pruning import prune
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.models import CreateModelRequest, OpenpipeTrainingConfig, dump
from tunepipe.services.fine_tunes.serving import bare_slug
from tunepipe.services.jobs import queue
from tunepipe.settings import Settings

SNAPSHOT_BATCH = 500
_LEGACY_PREFERENCE = {
    "preference_tuning_variant": "variant",
    "preference_tuning_learning_rate_multiplier": "learning_rate_multiplier",
    "preference_tuning_num_epochs": "num_epochs",
    "preference_tuning_training_beta": "training_beta",
    "preference_tuning_adapter_weight": "adapter_weight",
}
_LEGACY_SFT = ("batch_size", "learning_rate_multiplier", "num_epochs")


@dataclass(frozen=True, slots=True)
class TrainingPlan:
    """What the caller asked to train, the deprecated flat form folded in."""

    enable_sft: bool
    enable_preference: bool
    sft: dict[str, Any]
    preference: dict[str, Any]


def _first(*values: bool | None) -> bool:
    return next(v for v in values if v is not None)


def training_plan(cfg: OpenpipeTrainingConfig) -> TrainingPlan:
    """Normalise ``trainingConfig``: the new fields win over the deprecated ``hyperparameters``.

    Raises:
        InvalidRequest: preference settings without preference tuning, or nothing enabled.
    """
    legacy = cfg.hyperparameters.model_dump(exclude_none=True) if cfg.hyperparameters else {}
    enable_sft = _first(cfg.enable_sft, legacy.get("is_sft_enabled"), True)
    enable_pref = _first(cfg.enable_preference_tuning, legacy.get("is_preference_tuning_enabled"), False)
    legacy_pref = {new: legacy[old] for old, new in _LEGACY_PREFERENCE.items() if old in legacy}
    if cfg.preference_hyperparameters is not None and not enable_pref:
        raise InvalidRequest(
            "preference_hyperparameters were given but enable_preference_tuning is false",
            param="trainingConfig.preference_hyperparameters",
        )
    if legacy_pref and not enable_pref:
        raise InvalidRequest(
            f"{', '.join(k for k in _LEGACY_PREFERENCE if k in legacy)} given but "
            "is_preference_tuning_enabled is not true",
            param="trainingConfig.hyperparameters",
        )
    if not (enable_sft or enable_pref):
        raise InvalidRequest(
            "Nothing to train: enable SFT (enable_sft) or preference tuning (enable_preference_tuning)",
            param="trainingConfig.enable_sft",
        )
    sft = {k: legacy[k] for k in _LEGACY_SFT if k in legacy}
    if cfg.sft_hyperparameters is not None:
        sft.update(cfg.sft_hyperparameters.model_dump(exclude_none=True))
    preference = dict(legacy_pref)
    if cfg.preference_hyperparameters is not None:
        preference.update(cfg.preference_hyperparameters.model_dump(exclude_none=True))
    return TrainingPlan(enable_sft, enable_pref, sft, preference)


class FineTuneCreator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def create(self, conn: Connection, principal: Principal, body: CreateModelRequest) -> FineTune:
        cfg = body.training_config
        if not isinstance(cfg, OpenpipeTrainingConfig):
            raise InvalidRequest(
                f"Training provider {cfg.provider!r} is not supported: tunepipe trains LoRA adapters "
                'of its registered base models (provider "openpipe")',
                param="trainingConfig.provider",
                code="unsupported_provider",
            )
        if not check_slug(body.slug):
            raise InvalidRequest(f"Invalid slug {body.slug!r}: {SLUG_RULE}", param="slug")
        plan = training_plan(cfg)
        project_id = principal.project.id
        if repo.slug_taken(conn, body.slug):
            raise repo.slug_conflict(body.slug)
        # The training config is checked before the dataset it names (a 400 before a 404).
        root, parent_id = _base(conn, project_id, cfg.base_model)
        if dataset_repo.get_dataset(conn, project_id, body.dataset_id) is None:
            raise NotFound(f"No dataset {body.dataset_id!r} in this project", param="datasetId")
        rule_ids = list(dict.fromkeys(body.pruning_rule_ids))
        rules = _rule_texts(conn, body.dataset_id, rule_ids)
        rows = repo.count_dataset_rows(conn, project_id, body.dataset_id)
        if rows.train < MIN_TRAIN_ROWS:
            raise InvalidRequest(
                f"The dataset has {rows.train} TRAIN entries; training needs at least {MIN_TRAIN_ROWS}",
                param="datasetId",
                code="too_few_rows",
            )
        if plan.enable_preference and rows.train_preference == 0:
            raise InvalidRequest(
                "Preference tuning needs TRAIN entries with a rejected_message; this dataset has none",
                param="trainingConfig.enable_preference_tuning",
            )
        now = now_ms()
        ft = FineTune(
            id=uuid7(),
            project_id=project_id,
            slug=body.slug,
            dataset_id=body.dataset_id,
            provider="openpipe",
            base_model=cfg.base_model,
            root_model=root,
            parent_id=parent_id,
            status=FineTuneStatus.PENDING,
            error_message=None,
            description=body.description,
            default_temperature=body.default_temperature,
            training_config=dump(cfg),
            hyperparameters=resolve_hyperparameters(
                enable_sft=plan.enable_sft,
                enable_preference=plan.enable_preference,
                sft=plan.sft,
                preference=plan.preference,
                train_rows=rows.train,
                preference_rows=rows.train_preference,
                early_stopping=self._settings.train_early_stopping,
            ),
            pruning_rule_ids=rule_ids,
            metrics=None,
            train_rows=0,
            test_rows=0,
            created_at=now,
            updated_at=now,
            training_started_at=None,
            training_finished_at=None,
        )
        repo.create(conn, ft)  # Conflict if the slug was taken since the check
        rule_repo.copy_to_fine_tune(conn, ft.project_id, ft.id, rules)
        train, test = _snapshot(conn, ft, rules)
        repo.update_fine_tune(conn, ft.id, train_rows=train, test_rows=test)
        queue.enqueue(conn, JobKind.TRAIN, ft.project_id, ft.id, max_attempts=self._settings.job_max_attempts)
        created = repo.get_by_id(conn, ft.id)
        assert created is not None
        return created


def _rule_texts(conn: Connection, dataset_id: str, ids: Sequence[str]) -> list[str]:
    """The texts of the dataset's rules ``ids``, oldest first: what a fine-tune copies.

    Raises:
        InvalidRequest: an id is not a rule of this dataset.
    """
    found = rule_repo.rules_with_ids(conn, dataset_id, ids)
    missing = set(ids) - {r.id for r in found}
    if missing:
        raise InvalidRequest(
            f"Not pruning rules of dataset {dataset_id!r}: {', '.join(sorted(missing))}",
            param="pruningRuleIds",
        )
    return [r.text_to_match for r in found]


def _base(conn: Connection, project_id: str, name: str) -> tuple[str, str | None]:
    """``(root base model, parent fine-tune id)`` for ``baseModel``: a registered base model,
    or the slug of a deployed fine-tune of this project (training continues from it)."""
    model = base_models.find(conn, name.removeprefix("local:"))
    if model is not None and model.kind != "lora":
        return model.name, None
    parent = repo.get_by_slug(conn, project_id, bare_slug(name))
    if parent is not None:
        if parent.status != FineTuneStatus.DEPLOYED:
            raise InvalidRequest(
                f"The model {parent.slug!r} is not deployed (status {parent.status}); only a deployed "
                "model can be trained further",
                param="trainingConfig.baseModel",
                code="model_not_deployed",
            )
        return parent.root_model, parent.id
    names = [m.name for m in base_models.list_all(conn) if m.kind != "lora"]
    raise InvalidRequest(
        f"Unknown base model {name!r}. Registered base models: {', '.join(names) or 'none'} "
        "(add one with `tunepipe base-models add`), or the slug of a deployed model of this project",
        param="trainingConfig.baseModel",
        code="unknown_base_model",
    )


def _snapshot(conn: Connection, ft: FineTune, rules: list[str]) -> tuple[int, int]:
    """Copy the dataset's entries as training rows (inputs pruned); ``(train, test)`` counts."""
    assert ft.dataset_id is not None
    counts = {"TRAIN": 0, "TEST": 0}
    batch: list[tuple[str, str, dict[str, Any]]] = []
    for entry in dataset_repo.iter_entries(conn, ft.project_id, ft.dataset_id, EntryFilter()):
        d = entry.data
        split = d.split or "TRAIN"
        row = {
            "messages": prune(d.messages, rules).messages if rules else d.messages,
            "output": d.output,
            "rejected_message": d.rejected_message,
            "tools": d.tools,
            "tool_choice": d.tool_choice,
            "response_format": d.response_format,
        }
        batch.append((entry.id, split, row))
        counts[split] = counts.get(split, 0) + 1
        if len(batch) >= SNAPSHOT_BATCH:
            repo.add_entries(conn, ft.id, batch)
            batch = []
    repo.add_entries(conn, ft.id, batch)
    return counts["TRAIN"], counts["TEST"]
