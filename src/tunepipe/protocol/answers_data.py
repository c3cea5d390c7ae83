"""The documented shapes of the data endpoints' answers: datasets and their entries, jobs, request
logs, pruning rules, criteria and their alignment sets, evals.

The view functions beside the request models (:func:`tunepipe.protocol.datasets.dataset_view`,
:func:`tunepipe.protocol.jobs.job_view`, …) build what a route sends; these models only describe
it, for the API document and for the tests that hold the server to it (``tests/api/test_openapi*.py``).
Routes never validate their answers through them: an answer's bytes are the view's dict, encoded
once. A model forbids fields its view does not write, so a view that grows a field without its
model fails the schema check; a value that is open by nature (metadata, a job's params, a chat
message) is ``Any`` or an open object.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Exact(BaseModel):
    """A documented answer: exactly these fields."""

    model_config = ConfigDict(extra="forbid")


Json = dict[str, Any]


class Deleted(Exact):
    """``DELETE`` of a dataset, an entry, an eval, a pruning rule, a model."""

    id: str
    object: str
    deleted: Literal[True]


# Datasets


class Dataset(Exact):
    object: Literal["dataset"]
    id: str
    name: str
    created: str
    updated: str
    dataset_entry_count: int
    fine_tune_count: int
    train_ratio: float


class DatasetList(Exact):
    object: Literal["list"]
    data: list[Dataset]


class DatasetEntry(Exact):
    object: Literal["dataset.entry"]
    id: str
    dataset_id: str
    split: str | None
    messages: list[Json] = Field(description="The input messages, then the output")
    output: Json
    tools: list[Any] | None
    tool_choice: Any
    response_format: Any
    rejected_message: Json | None
    original_output: Json | None
    metadata: dict[str, str]
    provenance: str
    logged_call_id: str | None
    input_hash: str
    created: str
    updated: str


class DatasetEntryPage(Exact):
    object: Literal["list"]
    data: list[DatasetEntry]
    has_more: bool
    next_cursor: str | None


class EntryCreationError(Exact):
    object: Literal["dataset.entries.creation.error"]
    entry_index: int
    message: str


class EntryCreationErrors(Exact):
    object: Literal["list"]
    data: list[EntryCreationError]


class EntriesCreated(Exact):
    object: Literal["dataset.entries.creation"]
    entries_created: int
    errors: EntryCreationErrors


class LineError(Exact):
    line: int
    message: str


class DatasetUpload(Exact):
    object: Literal["dataset.upload"]
    entries_created: int
    lines: int
    error_count: int
    errors: list[LineError]


class UnstableDatasetId(Exact):
    datasetId: str


class UnstableDataset(Exact):
    id: str
    name: str
    createdAt: str
    updatedAt: str
    datasetEntryCount: int
    fineTuneCount: int


UnstableDatasetList = list[UnstableDataset]


class UnstableIndexError(Exact):
    index: int
    message: str


class UnstableEntriesCreated(Exact):
    createdEntries: int
    errors: list[UnstableIndexError]


# Jobs


class JobAnswer(Exact):
    object: Literal["job"]
    id: str
    kind: str
    subject_id: str
    status: str
    attempts: int
    max_attempts: int
    cancel_requested: bool
    error_message: str | None
    params: Json
    progress: Json
    result: Json | None
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None


class JobList(Exact):
    object: Literal["list"]
    data: list[JobAnswer]


class DatasetJob(Exact):
    object: Literal["dataset.job"]
    id: str
    dataset_id: str
    kind: str
    status: str
    done: int
    total: int | None = Field(description="How many to do, once known")
    created: int
    skipped: int
    capped: bool
    error_message: str | None
    params: Json
    attempts: int
    created_at: str
    updated_at: str


class DatasetJobList(Exact):
    object: Literal["list"]
    data: list[DatasetJob]


# Request logs


class Status(Exact):
    status: Literal["ok"]


class MatchedLogs(Exact):
    matchedLogs: int


class LoggedCallAnswer(Exact):
    """A logged call; ``reqPayload``, ``respPayload`` and ``attempts`` only with its bodies."""

    id: str
    requestedAt: int
    receivedAt: int | None
    durationMs: int | None
    model: str | None
    statusCode: int | None
    errorMessage: str | None
    inputTokens: int | None
    outputTokens: int | None
    cost: float | None
    finishReason: str | None
    completionId: str | None
    cacheHit: bool
    source: str
    streamed: bool
    metadata: dict[str, str | None]
    parentId: str | None
    criteriaResults: dict[str, Json]
    answeredBy: str | None
    attemptCount: int
    requestId: str | None
    endpoint: str
    reqPayload: Any = None
    respPayload: Any = None
    attempts: list[Json] | None = None


class LoggedCallPage(Exact):
    object: Literal["list"]
    data: list[LoggedCallAnswer]
    has_more: bool
    next_cursor: str | None


class LatestLoggedCall(Exact):
    createdAt: str
    cacheHit: bool
    statusCode: int | None
    errorMessage: str | None
    reqPayload: Any
    respPayload: Any
    tags: dict[str, str | None]
    metadata: dict[str, str | None]


LatestLoggedCallOrNull = LatestLoggedCall | None  # null: nothing logged yet


class CachedAnswer(Exact):
    respPayload: Json | None


# Pruning rules


class PruningRuleAnswer(Exact):
    id: str
    object: Literal["pruning_rule"]
    datasetId: str | None
    textToMatch: str
    tokensInText: int
    createdAt: int


class PruningRuleList(Exact):
    object: Literal["list"]
    data: list[PruningRuleAnswer]


class PruningRuleSaving(PruningRuleAnswer):
    matches: int
    tokensSaved: int


class PruningReportAnswer(Exact):
    object: Literal["pruning_report"]
    datasetId: str
    entries: int
    entriesChanged: int
    messagesDropped: int
    tokensSaved: int
    data: list[PruningRuleSaving]


# Criteria and alignment


class Judged(Exact):
    score: float
    explanation: str | None
    cost_usd: float


class CriterionAnswer(Exact):
    object: Literal["criterion"]
    id: str = Field(description="`name@vN`")
    name: str
    version: int
    description: str | None
    instructions: str
    judge_model: str
    variables: list[str]
    created: str


class CriterionList(Exact):
    object: Literal["list"]
    data: list[CriterionAnswer]


class CriterionDeleted(Deleted):
    versions_deleted: int


class RowJudge(Exact):
    score: float | None
    explanation: str | None
    error_message: str | None


class AlignmentRowAnswer(Exact):
    object: Literal["criterion.alignment_row"]
    id: str
    messages: list[Json]
    tools: list[Json] | None
    tool_choice: Any
    output: Json
    judgement: Literal["PASS", "FAIL"] | None
    source: str
    dataset_entry_id: str | None
    created: str
    judge: RowJudge | None = None


class AlignmentRowList(Exact):
    object: Literal["list"]
    criterion: str
    data: list[AlignmentRowAnswer]


class RowsAdded(Exact):
    rows_added: int


class RowsUploaded(RowsAdded):
    errors: list[LineError]


class RowLabelled(Exact):
    id: str
    judgement: Literal["PASS", "FAIL"] | None


class RowDeleted(Exact):
    id: str
    deleted: Literal[True]


class AlignmentStatsAnswer(Exact):
    criterion: str
    version: int
    judge_model: str
    rows: int
    compared: int
    unlabelled: int
    errors: int
    true_fail: int
    false_fail: int
    missed_fail: int
    true_pass: int
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    kappa: float | None
    cost_usd: float


class AlignmentReport(AlignmentStatsAnswer):
    disagreements: list[AlignmentRowAnswer]


class AlignmentComparison(Exact):
    object: Literal["list"]
    data: list[AlignmentStatsAnswer]


# Evals


class EvalStarted(Exact):
    id: str
    object: Literal["eval"]
    status: str
    job_id: str


class EvalModelsAdded(Exact):
    id: str
    models: list[str]
    status: str
    job_id: str


class EvalAnswer(Exact):
    """An eval; the judge's settings with a judge, ``results`` when one is read by id."""

    object: Literal["eval"]
    id: str
    name: str
    type: str
    dataset_id: str
    models: list[str]
    status: str
    progress: Json
    num_entries: int
    created: str
    updated: str
    judge_model: str | None = None
    instructions: str | None = None
    both_orders: bool | None = None
    seed: int | None = None
    criteria: list[str] | None = None
    grader: str | None = None
    results: Json | None = None


class EvalList(Exact):
    object: Literal["list"]
    data: list[EvalAnswer]


class EvalInput(Exact):
    messages: list[Json]
    tools: list[Any] | None
    tool_choice: Any


class Verdict(Exact):
    model: str
    opponent: str | None
    criterion: str | None
    status: str
    score: float | None
    explanation: str | None
    error_message: str | None
    cost_usd: float
    details: Json | None = None


class EvalRowAnswer(Exact):
    entry_id: str
    input: EvalInput
    dataset_output: Json
    outputs: dict[str, Json | None]
    judgements: list[Verdict]


class EvalRowPage(Exact):
    object: Literal["list"]
    data: list[EvalRowAnswer]
    total: int
    offset: int
