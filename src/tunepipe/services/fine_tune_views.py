"""What a client sees of a model: OpenPipe's Model object (spec A.4), the deprecated
``/unstable/finetune/get`` shape, and test-set outputs.

The openpipe SDK (5.0.0) parses every item of ``GET /models`` as a Model and requires all of its
fields, so the models tunepipe routes but did not train (OpenAI, Anthropic, Gemini, external,
``local:``) are shown in the same shape: ``openpipe.status`` DEPLOYED, no hyperparameters, no
dataset. Timestamps are ISO 8601 strings, as OpenPipe sends them. What OpenPipe does not have
(training progress and metrics, row counts, the copied pruning rules) goes under ``tunepipe``,
where an OpenPipe client never looks.

Pure functions: the caller looks up the context window (:func:`context_window`, a file read)
and the owner.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from tunepipe.db.fine_tunes import FineTune, TestOutput
from tunepipe.domain.pricing import Price
from tunepipe.services.datasets import iso
from tunepipe.services.fine_tune_eval import summary

CAPABILITIES = ("chat", "tools", "json")


@functools.lru_cache(maxsize=256)
def context_window(model_dir: str) -> int:
    """``max_position_embeddings`` from a model directory's ``config.json`` (0 when unknown)."""
    try:
        config = orjson.loads((Path(model_dir) / "config.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return 0
    for section in (config, config.get("text_config") or {}):
        value = section.get("max_position_embeddings") if isinstance(section, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return 0


def _iso_or_none(ms: int | None) -> str | None:
    return iso(ms) if ms is not None else None


def model_view(ft: FineTune, *, owner: str, context: int) -> dict[str, Any]:
    """The spec's Model object for a fine-tune, plus tunepipe's extras."""
    return {
        "id": ft.slug,
        "name": ft.slug,
        "object": "model",
        "description": ft.description,
        "created": iso(ft.created_at),
        "updated": iso(ft.updated_at),
        "openpipe": {
            "baseModel": ft.base_model,
            "hyperparameters": ft.hyperparameters,
            "status": ft.status,
            "datasetId": ft.dataset_id or "",
            "errorMessage": ft.error_message,
        },
        "contextWindow": context,
        # The engine lets a completion use whatever room the prompt leaves.
        "maxCompletionTokens": context,
        "capabilities": list(CAPABILITIES),
        "pricing": {"chatIn": 0, "chatOut": 0},
        "owned_by": owner,
        "tunepipe": {
            "progress": ft.progress or {},
            "metrics": ft.metrics or {},
            "trainRows": ft.train_rows,
            "testRows": ft.test_rows,
            "pruningRuleIds": ft.pruning_rule_ids,
            "defaultTemperature": ft.default_temperature,
            "rootModel": ft.root_model,
            "parentId": ft.parent_id,
            "trainingStartedAt": _iso_or_none(ft.training_started_at),
            "trainingFinishedAt": _iso_or_none(ft.training_finished_at),
        },
    }


def routed_model_view(
    model_id: str, *, owner: str, created_s: int, context: int = 0, price: Price | None = None
) -> dict[str, Any]:
    """A model tunepipe routes to but did not train, in the Model shape (context 0: unknown)."""
    created = iso(created_s * 1000)
    return {
        "id": model_id,
        "name": model_id,
        "object": "model",
        "description": None,
        "created": created,
        "updated": created,
        "openpipe": {
            "baseModel": model_id,
            "hyperparameters": None,
            "status": "DEPLOYED",
            "datasetId": "",
            "errorMessage": None,
        },
        "contextWindow": context,
        "maxCompletionTokens": context,
        "capabilities": list(CAPABILITIES),
        "pricing": {
            "chatIn": price.input_per_m if price else 0,
            "chatOut": price.output_per_m if price else 0,
        },
        "owned_by": owner,
    }


def unstable_view(ft: FineTune) -> dict[str, Any]:
    """``GET /unstable/finetune/get`` (deprecated)."""
    return {
        "id": ft.id,
        "status": ft.status,
        "slug": ft.slug,
        "baseModel": ft.base_model,
        "errorMessage": ft.error_message,
        "datasetId": ft.dataset_id or "",
        "createdAt": iso(ft.created_at),
    }


def test_output_view(out: TestOutput) -> dict[str, Any]:
    return {
        "object": "model.test_output",
        "entry_id": out.entry_id,
        "output": out.output,
        "finish_reason": out.finish_reason,
        "error_message": out.error_message,
        "exact_match": out.exact_match,
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
    }


def test_outputs_view(ft: FineTune, outputs: Sequence[TestOutput]) -> dict[str, Any]:
    """The list, with the share of exact matches as the model's metrics count it (a row whose
    generation failed is a miss)."""
    return {
        "object": "list",
        "model": ft.slug,
        "data": [test_output_view(o) for o in outputs],
        "exact_match": summary(outputs)["test_exact_match"],
    }
