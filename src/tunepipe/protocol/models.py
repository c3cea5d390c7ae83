"""The Models API on the wire (spec A.4): the bodies of ``POST /models`` and the deprecated
``/unstable/finetune/*`` routes, and the Model object every model is shown as.

Top-level fields are camelCase and training hyperparameters snake_case, as OpenPipe spells
them. ``trainingConfig`` is a union discriminated by ``provider``; only ``openpipe`` (LoRA on a
local base model) trains here, the other providers are parsed so that the error names them.
Unknown hyperparameter fields are rejected: a typo must not silently train with defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.catalog import RoutedModel, TrainedModel
from tunepipe.domain.fine_tunes import FineTune, TestOutput, test_set_summary
from tunepipe.protocol.logs import iso
from tunepipe.protocol.types import Id, Text

PreferenceVariant = Literal["DPO", "APO Zero"]
BatchSize = Literal["auto"] | Annotated[int, Field(ge=1, le=4096)]
Multiplier = Annotated[float, Field(gt=0, le=1000)]
Epochs = Annotated[float, Field(gt=0, le=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SftHyperparameters(_Strict):
    batch_size: BatchSize | None = None
    learning_rate_multiplier: Multiplier | None = None
    num_epochs: Epochs | None = None


class PreferenceHyperparameters(_Strict):
    variant: PreferenceVariant | None = None
    learning_rate_multiplier: Multiplier | None = None
    num_epochs: Epochs | None = None
    training_beta: Annotated[float, Field(gt=0, le=100)] | None = None
    adapter_weight: Annotated[float, Field(ge=0, le=100)] | None = None


class LegacyHyperparameters(_Strict):
    """The deprecated flat ``hyperparameters`` form (also ``overrides`` of the unstable route)."""

    is_sft_enabled: bool | None = None
    batch_size: BatchSize | None = None
    learning_rate_multiplier: Multiplier | None = None
    num_epochs: Epochs | None = None
    is_preference_tuning_enabled: bool | None = None
    preference_tuning_variant: PreferenceVariant | None = None
    preference_tuning_learning_rate_multiplier: Multiplier | None = None
    preference_tuning_num_epochs: Epochs | None = None
    preference_tuning_training_beta: Annotated[float, Field(gt=0, le=100)] | None = None
    preference_tuning_adapter_weight: Annotated[float, Field(ge=0, le=100)] | None = None


class OpenpipeTrainingConfig(_Strict):
    provider: Literal["openpipe"]
    base_model: str = Field(alias="baseModel", min_length=1, max_length=300)
    enable_sft: bool | None = None
    enable_preference_tuning: bool | None = None
    sft_hyperparameters: SftHyperparameters | None = None
    preference_hyperparameters: PreferenceHyperparameters | None = None
    hyperparameters: LegacyHyperparameters | None = None


class OtherTrainingConfig(BaseModel):
    """``openpipeReward``, ``openai`` and ``gemini``: accepted by the schema, refused by the
    service with a message saying what is supported."""

    model_config = ConfigDict(extra="allow")

    provider: Literal["openpipeReward", "openai", "gemini"]
    base_model: str = Field(alias="baseModel", min_length=1)


TrainingConfig = Annotated[OpenpipeTrainingConfig | OtherTrainingConfig, Field(discriminator="provider")]


class CreateModelRequest(_Strict):
    dataset_id: Id = Field(alias="datasetId", min_length=1, max_length=100)
    slug: Text = Field(min_length=1, max_length=200)
    pruning_rule_ids: list[Text] = Field(default_factory=list, alias="pruningRuleIds", max_length=1000)
    default_temperature: Annotated[float, Field(ge=0, le=2)] | None = Field(None, alias="defaultTemperature")
    description: str | None = Field(None, max_length=10_000)
    training_config: TrainingConfig = Field(alias="trainingConfig")


class UnstableFinetuneCreateRequest(_Strict):
    dataset_id: Id = Field(alias="datasetId", min_length=1, max_length=100)
    slug: Text = Field(min_length=1, max_length=200)
    base_model: str = Field(alias="baseModel", min_length=1, max_length=300)
    overrides: LegacyHyperparameters | None = None


class UnstableFinetuneDeleteRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: Id | None = None
    slug: Id | None = None


def dump(value: BaseModel) -> dict[str, Any]:
    """A request as recorded with the model: aliases, without fields left out."""
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


def unstable_request(body: UnstableFinetuneCreateRequest) -> CreateModelRequest:
    """The deprecated create body as a ``POST /models`` body (``overrides`` = the flat form)."""
    config: dict[str, Any] = {"provider": "openpipe", "baseModel": body.base_model}
    if body.overrides is not None:
        config["hyperparameters"] = dump(body.overrides)
    return CreateModelRequest.model_validate(
        {"datasetId": body.dataset_id, "slug": body.slug, "trainingConfig": config}
    )


# Views
#
# The openpipe SDK (5.0.0) parses every item of ``GET /models`` as a Model and requires all of its
# fields, so the models tunepipe routes but did not train (OpenAI, Anthropic, Gemini, external,
# ``local:``) are shown in the same shape: ``openpipe.status`` DEPLOYED, no hyperparameters, no
# dataset. ``created`` and ``updated`` are Unix seconds, as OpenAI's Model has them (the openpipe
# SDK reads them as strings and converts a number). A context window or output limit that is not
# known is 0: the openpipe SDK refuses null there. What OpenPipe does not have (training progress
# and metrics, row counts, the copied pruning rules) goes under ``tunepipe``, where an OpenPipe
# client never looks.

CAPABILITIES = ("chat", "tools", "json")


def _iso_or_none(ms: int | None) -> str | None:
    return iso(ms) if ms is not None else None


def model_view(ft: FineTune, *, progress: dict[str, Any], owner: str, context: int) -> dict[str, Any]:
    """The spec's Model object for a fine-tune, plus tunepipe's extras (``progress`` is its
    train job's)."""
    return {
        "id": ft.slug,
        "name": ft.slug,
        "object": "model",
        "description": ft.description,
        "created": ft.created_at // 1000,
        "updated": ft.updated_at // 1000,
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
            "progress": progress,
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


def routed_model_view(item: RoutedModel) -> dict[str, Any]:
    """A model tunepipe routes to but did not train, in the Model shape (limits 0: unknown)."""
    model_id, price = item.id, item.price
    return {
        "id": model_id,
        "name": model_id,
        "object": "model",
        "description": None,
        "created": item.created_s,
        "updated": item.created_s,
        "openpipe": {
            "baseModel": model_id,
            "hyperparameters": None,
            "status": "DEPLOYED",
            "datasetId": "",
            "errorMessage": None,
        },
        "contextWindow": item.context,
        "maxCompletionTokens": item.max_output,
        "capabilities": list(CAPABILITIES),
        "pricing": {
            "chatIn": price.input_per_m if price else 0,
            "chatOut": price.output_per_m if price else 0,
        },
        "owned_by": item.owner,
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
        "exact_match": test_set_summary(outputs)["test_exact_match"],
    }


def catalog_view(item: TrainedModel | RoutedModel) -> dict[str, Any]:
    """One item of ``GET /models``."""
    if isinstance(item, TrainedModel):
        return model_view(item.fine_tune, progress=item.progress, owner=item.owner, context=item.context)
    return routed_model_view(item)
