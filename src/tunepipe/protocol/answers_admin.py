"""The documented shapes of the model, provider, key, project, routing and system endpoints'
answers (see :mod:`tunepipe.protocol.answers_data` for why they only describe, never build)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.protocol.answers_data import Exact, Json


class Open(BaseModel):
    """A documented answer that may carry more than these fields."""

    model_config = ConfigDict(extra="allow")


# Models


class ModelOpenpipe(Exact):
    baseModel: str
    hyperparameters: Json | None
    status: str
    datasetId: str
    errorMessage: str | None


class ModelPricing(Exact):
    chatIn: float
    chatOut: float


class ModelTraining(Exact):
    progress: Json
    metrics: Json
    trainRows: int
    testRows: int
    pruningRuleIds: list[str]
    defaultTemperature: float | None
    rootModel: str
    parentId: str | None
    trainingStartedAt: str | None
    trainingFinishedAt: str | None


class ModelAnswer(Exact):
    """A model the project can call; ``tunepipe`` only on one it trained."""

    id: str
    name: str
    object: Literal["model"]
    description: str | None
    created: int
    updated: int
    openpipe: ModelOpenpipe
    contextWindow: int
    maxCompletionTokens: int
    capabilities: list[str]
    pricing: ModelPricing
    owned_by: str
    tunepipe: ModelTraining | None = None


class ModelList(Exact):
    object: Literal["list"]
    data: list[ModelAnswer]


class TestOutputAnswer(Exact):
    object: Literal["model.test_output"]
    entry_id: str
    output: Json | None
    finish_reason: str | None
    error_message: str | None
    exact_match: bool | None
    prompt_tokens: int | None
    completion_tokens: int | None


class TestOutputList(Exact):
    object: Literal["list"]
    model: str
    data: list[TestOutputAnswer]
    exact_match: float | None


class UnstableFinetuneId(Exact):
    id: str


class UnstableFinetune(Exact):
    id: str
    status: str
    slug: str
    baseModel: str
    errorMessage: str | None
    datasetId: str
    createdAt: str


class DeletedFlag(Exact):
    deleted: Literal[True]


# Providers and base models


class ProviderKeyAnswer(Exact):
    provider: str
    apiKey: str | None = Field(description="Masked")
    baseUrl: str | None


class ProviderKeyList(Exact):
    object: Literal["list"]
    data: list[ProviderKeyAnswer]


class ProviderKeySet(Exact):
    provider: str
    status: Literal["ok"]


class ProviderKeyDeleted(Exact):
    provider: str
    deleted: Literal[True]


class ExternalModelAnswer(Exact):
    slug: str
    id: str = Field(description="`openpipe:<provider>/<model>`")
    inputCostPerMillion: float | None
    outputCostPerMillion: float | None


class ExternalProviderAnswer(Exact):
    slug: str
    kind: str
    baseUrl: str
    apiKey: str | None = Field(description="Masked")
    apiVersion: str | None
    models: list[ExternalModelAnswer]


class ExternalProviderList(Exact):
    object: Literal["list"]
    data: list[ExternalProviderAnswer]


class SlugDeleted(Exact):
    slug: str
    deleted: Literal[True]


class BaseModelAnswer(Exact):
    """A registered base model; ``source`` and ``path`` only for an admin key."""

    id: str
    name: str
    kind: str
    base: str | None
    createdAt: int
    source: str | None = None
    path: str | None = None


class BaseModelList(Exact):
    object: Literal["list"]
    data: list[BaseModelAnswer]


class IdDeleted(Exact):
    id: str
    deleted: Literal[True]


# Keys and projects


class KeyLimitsAnswer(Exact):
    rpm: int | None
    tpm: int | None
    max_concurrency: int | None


class ApiKeyAnswer(Exact):
    id: str
    object: Literal["api_key"]
    name: str
    prefix: str
    read_only: bool
    created_at: str
    limits: KeyLimitsAnswer


class ApiKeyList(Exact):
    object: Literal["list"]
    data: list[ApiKeyAnswer]


class ProjectAnswer(Exact):
    id: str
    object: Literal["project"]
    name: str
    created_at: str


class ProjectList(Exact):
    object: Literal["list"]
    data: list[ProjectAnswer]


class ProjectKeys(Exact):
    read_write: str
    read_only: str


class NewProject(ProjectAnswer):
    api_keys: ProjectKeys


class ProjectDeleted(Exact):
    id: str
    object: Literal["project"]
    name: str
    deleted: Literal[True]


# Mixture of agents, routing, cache, health


class MoaConfigAnswer(Exact):
    object: Literal["moa_config"]
    id: str
    slug: str
    model: str
    proposers: list[str]
    aggregator: str
    candidates: int
    temperature: float
    layers: int
    critique_prompt: str
    synthesis_prompt: str
    created: str
    updated: str


class MoaConfigList(Exact):
    object: Literal["list"]
    data: list[MoaConfigAnswer]


class MoaConfigDeleted(Exact):
    object: Literal["moa_config"]
    slug: str
    deleted: Literal[True]


class FallbackChainAnswer(Exact):
    model: str
    fallbacks: list[str]
    retries: int | None


class ModelHealth(Exact):
    model: str
    state: Literal["cooling", "failing"]
    consecutive_failures: int
    cooldown_remaining_s: float
    last_error: str | None


class RoutingOverview(Exact):
    object: Literal["routing"]
    fallbacks: list[FallbackChainAnswer]
    models: list[ModelHealth]


class ModelDeleted(Exact):
    model: str
    deleted: Literal[True]


class CacheModelStats(Exact):
    model: str
    entries: int
    bytes: int


class CacheStatsList(Exact):
    object: Literal["list"]
    data: list[CacheModelStats]


class CacheCleared(Exact):
    deleted: int


class LogWriterHealth(Exact):
    enqueued: int
    written: int
    dropped: int
    failed_batches: int
    waited_for_space: int
    spooled: int
    replayed: int
    queueDepth: int


class Health(Exact):
    status: Literal["ok"]
    version: str
    logs: LogWriterHealth


class EmbeddingList(Open):
    """OpenAI's embeddings answer: ``data`` of ``{object: 'embedding', index, embedding}`` (a
    float list, or base64 with ``encoding_format: base64``), ``model``, ``usage``."""

    object: Literal["list"]
    data: list[Json]
    model: str
    usage: Json


class Completion(Open):
    """A legacy completion (OpenAI's ``text_completion``)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[Json]
    usage: Json | None = None


class ResponseObject(Open):
    """A model response (OpenAI's Responses API ``response`` object)."""

    id: str
    object: Literal["response"]
    created_at: float
    model: str
    status: str
    output: list[Json]


class MessageObject(Open):
    """Anthropic's ``message`` object."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[Json]
    model: str
    stop_reason: str | None
    usage: Json
