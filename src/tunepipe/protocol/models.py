"""Bodies of the Models API (spec A.4): ``POST /models`` and the deprecated
``/unstable/finetune/*`` routes.

Top-level fields are camelCase and training hyperparameters snake_case, as OpenPipe spells
them. ``trainingConfig`` is a union discriminated by ``provider``; only ``openpipe`` (LoRA on a
local base model) trains here, the other providers are parsed so that the error names them.
Unknown hyperparameter fields are rejected: a typo must not silently train with defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    dataset_id: str = Field(alias="datasetId", min_length=1, max_length=100)
    slug: str = Field(min_length=1, max_length=200)
    pruning_rule_ids: list[str] = Field(default_factory=list, alias="pruningRuleIds", max_length=1000)
    default_temperature: Annotated[float, Field(ge=0, le=2)] | None = Field(None, alias="defaultTemperature")
    description: str | None = Field(None, max_length=10_000)
    training_config: TrainingConfig = Field(alias="trainingConfig")


class UnstableFinetuneCreateRequest(_Strict):
    dataset_id: str = Field(alias="datasetId", min_length=1, max_length=100)
    slug: str = Field(min_length=1, max_length=200)
    base_model: str = Field(alias="baseModel", min_length=1, max_length=300)
    overrides: LegacyHyperparameters | None = None


class UnstableFinetuneDeleteRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    slug: str | None = None


def dump(value: BaseModel) -> dict[str, Any]:
    """A request as recorded with the model: aliases, without fields left out."""
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)
