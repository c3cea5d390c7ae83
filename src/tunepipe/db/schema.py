"""The tables. Core ``Table`` objects rather than ORM classes: the hot paths (the log writer,
log queries) are bulk statements, and repositories return plain frozen values.

Times are integer Unix milliseconds, as the OpenPipe API speaks them, which also keeps SQLite
and Postgres behaving identically. Log rows stay narrow; bodies live compressed in their own
table and metadata as indexed key/value rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("read_only", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    # Rate limits of the key (null: none): requests and tokens per minute, requests in flight.
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("max_concurrency", Integer, nullable=True),
)

# Keys of the installation's administrators (projects, base models, installation-wide settings):
# no project, no limits. Kept apart from `api_keys` so that nothing listing or scoping project
# keys can ever return one.
admin_keys = Table(
    "admin_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Per-project credentials for the built-in providers; they override the environment defaults.
provider_keys = Table(
    "provider_keys",
    metadata,
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("provider", String(32), primary_key=True),
    Column("api_key_enc", Text, nullable=True),
    Column("base_url", Text, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

external_providers = Table(
    "external_providers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("slug", String(100), nullable=False),
    Column("kind", String(16), nullable=False),  # "openai" | "azure"
    Column("base_url", Text, nullable=False),
    Column("api_key_enc", Text, nullable=True),
    Column("api_version", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("project_id", "slug"),
)

external_models = Table(
    "external_models",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "provider_id", String(36), ForeignKey("external_providers.id", ondelete="CASCADE"), nullable=False
    ),
    Column("slug", String(200), nullable=False),
    Column("input_cost_per_m", Float, nullable=True),
    Column("output_cost_per_m", Float, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("provider_id", "slug"),
)

logged_calls = Table(
    "logged_calls",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("model", String(300), nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("cost", Float, nullable=True),
    Column("finish_reason", String(32), nullable=True),
    Column("completion_id", String(200), nullable=True),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("source", String(24), nullable=False),  # proxy | report | report-anthropic | judge
    Column("streamed", Boolean, nullable=False, default=False),
    # A judge's call: the call it judged (criteria at request time), so judge spend is traceable.
    Column("parent_id", String(36), nullable=True),
    # The model that answered (a fallback's, when the requested one failed) and the attempts made.
    Column("answered_by", String(300), nullable=True),
    Column("attempts", Integer, nullable=True),
    # The x-request-id answered with (the client's own when it sent one).
    Column("request_id", String(200), nullable=True),
    # The API the call came through, when not chat completions:
    # responses | messages | embeddings | completions.
    Column("endpoint", String(24), nullable=True),
    Index(None, "project_id", "requested_at"),
    Index(None, "parent_id"),
    Index(None, "project_id", "model", "requested_at"),
    Index(None, "project_id", "completion_id"),
)

# Request/response bodies, zlib-compressed JSON; kept apart so scans of logged_calls stay cheap.
logged_call_bodies = Table(
    "logged_call_bodies",
    metadata,
    Column("call_id", String(36), ForeignKey("logged_calls.id", ondelete="CASCADE"), primary_key=True),
    Column("request", LargeBinary, nullable=True),
    Column("response", LargeBinary, nullable=True),
    # Every attempt of a retried or fallen-back call: [{model, status, error, latency_ms}].
    Column("attempts", LargeBinary, nullable=True),
)

logged_call_metadata = Table(
    "logged_call_metadata",
    metadata,
    Column("call_id", String(36), ForeignKey("logged_calls.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("project_id", String(36), nullable=False),
    Column("value", Text, nullable=True),
    Index(None, "project_id", "key", "value"),
)

# Criteria results on a judged call, a row per choice and criterion, so logs filter on them.
logged_call_criteria = Table(
    "logged_call_criteria",
    metadata,
    Column("call_id", String(36), ForeignKey("logged_calls.id", ondelete="CASCADE"), primary_key=True),
    Column("choice_index", Integer, primary_key=True),
    Column("criterion", String(100), primary_key=True),
    Column("project_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("outcome", String(8), nullable=False),  # pass | fail | error
    Column("score", Float, nullable=True),
    Column("explanation", Text, nullable=True),
    Column("error_code", Integer, nullable=True),
    Column("error_message", Text, nullable=True),
    Index(None, "project_id", "criterion", "outcome"),
)

# Base models the local engine can load, for the whole installation (not per project).
base_models = Table(
    "base_models",
    metadata,
    Column("name", String(300), primary_key=True),
    Column("source", Text, nullable=False),  # what the user gave: hub id, directory or .gguf path
    Column("path", Text, nullable=False),  # the Hugging Face-layout directory that is loaded
    Column("kind", String(16), nullable=False),  # hub | dir | gguf | lora
    # For a LoRA adapter: the registered base model it applies to.
    Column("base", String(300), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

# Training data. An entry's input (messages without the final assistant message, tools, …) and
# its output (that final assistant message) are kept apart: relabelling replaces only the output,
# and `input_hash` finds duplicates and fixes the split. JSON columns hold orjson text.
datasets = Table(
    "datasets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("train_ratio", Float, nullable=False, default=0.9),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "project_id", "created_at"),
)

dataset_entries = Table(
    "dataset_entries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("dataset_id", String(36), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(36), nullable=False),
    Column("split", String(8), nullable=False),  # TRAIN | TEST
    Column("messages", Text, nullable=False),  # the input messages, without the output
    Column("output", Text, nullable=False),  # the final assistant message: the training target
    Column("tools", Text, nullable=True),
    Column("tool_choice", Text, nullable=True),
    Column("response_format", Text, nullable=True),
    Column("rejected_message", Text, nullable=True),
    Column("metadata", Text, nullable=True),
    Column("original_output", Text, nullable=True),  # the output before the first edit/relabel
    Column("provenance", String(24), nullable=False),
    Column("logged_call_id", String(36), nullable=True),
    Column("job_id", String(36), nullable=True),  # the import job that created it
    Column("input_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "dataset_id", "created_at"),
    Index(None, "dataset_id", "split"),
    Index(None, "dataset_id", "input_hash"),
    Index(None, "job_id"),
)

# Pruning rules (spec B.11): applied oldest first, so `created_at` is kept strictly increasing
# per dataset. A fine-tune holds copies (`fine_tune_id` set, `dataset_id` null) so rules edited
# later never change an already-trained model.
pruning_rules = Table(
    "pruning_rules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("dataset_id", String(36), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=True),
    Column("fine_tune_id", String(36), nullable=True),
    Column("text_to_match", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "dataset_id", "created_at"),
)

# Fine-tuned models (spec A.4, C "FineTune"). `slug` is the public model id (`openpipe:<slug>`),
# unique across projects. `root_model` is the registered base model the adapter sits on (for a
# model trained on top of an earlier fine-tune, that one's root); `parent_id` names the earlier
# fine-tune. JSON columns hold orjson text: the training config as sent, the hyperparameters
# resolved from it (what the trainer was given), final metrics. Its status follows its train job
# (progress while training is the job's).
fine_tunes = Table(
    "fine_tunes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("slug", String(200), nullable=False, unique=True),
    Column("dataset_id", String(36), ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True),
    Column("provider", String(16), nullable=False),
    Column("base_model", String(300), nullable=False),  # as requested: a base model or a slug
    Column("root_model", String(300), nullable=False),
    Column("parent_id", String(36), nullable=True),
    Column("status", String(24), nullable=False),
    Column("error_message", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("default_temperature", Float, nullable=True),
    Column("training_config", Text, nullable=False),
    Column("hyperparameters", Text, nullable=False),
    Column("pruning_rule_ids", Text, nullable=False),
    Column("metrics", Text, nullable=True),
    Column("train_rows", Integer, nullable=False, default=0),
    Column("test_rows", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("training_started_at", BigInteger, nullable=True),
    Column("training_finished_at", BigInteger, nullable=True),
    Index(None, "project_id", "created_at"),
)

# The rows a fine-tune trains and is tested on, copied (pruned, in trainer form) when it is
# created: later edits to the dataset never change what a model was trained on.
fine_tune_entries = Table(
    "fine_tune_entries",
    metadata,
    Column("fine_tune_id", String(36), ForeignKey("fine_tunes.id", ondelete="CASCADE"), primary_key=True),
    Column("entry_id", String(36), primary_key=True),
    Column("split", String(8), nullable=False),
    Column("row", Text, nullable=False),  # {"messages", "output", "rejected_message", "tools", …}
    Index(None, "fine_tune_id", "split"),
)

# The model's answers on its TEST split, generated after training (evaluations judge them).
fine_tune_test_outputs = Table(
    "fine_tune_test_outputs",
    metadata,
    Column("fine_tune_id", String(36), ForeignKey("fine_tunes.id", ondelete="CASCADE"), primary_key=True),
    Column("entry_id", String(36), primary_key=True),
    Column("output", Text, nullable=True),
    Column("finish_reason", String(32), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("exact_match", Boolean, nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

# Trained files, kept in the database so any server can serve a model a worker on another
# machine trained: `adapter` is a gzipped tar of the adapter directory (weights, config,
# tokenizer, training log).
fine_tune_artifacts = Table(
    "fine_tune_artifacts",
    metadata,
    Column("fine_tune_id", String(36), ForeignKey("fine_tunes.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Every background job (train, import_logs, relabel), for the worker inside `tunepipe serve` and
# `tunepipe worker` processes. A worker claims a QUEUED job with a conditional UPDATE (only one
# claimer's UPDATE matches), then beats `heartbeat_at` while it runs; a RUNNING job whose heartbeat
# stopped belongs to a dead worker and is requeued (or failed once `attempts` reaches
# `max_attempts`) by any worker. Statuses move only as `domain/jobs.py` says.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # train | import_logs | relabel | evaluate | align
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("subject_id", String(36), nullable=False),  # the fine-tune, or the dataset
    Column("status", String(12), nullable=False),  # QUEUED | RUNNING | DONE | ERROR | CANCELLED
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False, default=2),
    Column("worker_id", String(200), nullable=True),
    Column("heartbeat_at", BigInteger, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("error_message", Text, nullable=True),
    Column("params", Text, nullable=True),  # JSON: what was asked
    Column("progress", Text, nullable=True),  # JSON: stage, step, counters
    Column("result", Text, nullable=True),  # JSON: what it produced
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("finished_at", BigInteger, nullable=True),
    Index(None, "status", "created_at"),
    Index(None, "subject_id"),
    Index(None, "project_id", "created_at"),
)

# Changes to settings that servers cache (provider keys, external providers, base models,
# fine-tunes), so every process drops its cached copy within a poll interval rather than a TTL.
config_changes = Table(
    "config_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(32), nullable=False),
    Column("key", String(300), nullable=True),
    Column("at", BigInteger, nullable=False),
    Index(None, "at"),
)

# Criteria (spec B.6): immutable versions of a judge (model + instructions), `name@v<version>`.
criteria = Table(
    "criteria",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=True),
    Column("instructions", Text, nullable=False),
    Column("judge_model", String(300), nullable=False),
    Column("variables", Text, nullable=False),  # JSON list: the optional templated variables shown
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name", "version"),
)

# A criterion's alignment set: outputs humans labelled PASS/FAIL, shared by all its versions so
# that versions are compared on the same rows.
alignment_rows = Table(
    "alignment_rows",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("criterion_name", String(100), nullable=False),
    Column("messages", Text, nullable=False),
    Column("tools", Text, nullable=True),
    Column("tool_choice", Text, nullable=True),
    Column("output", Text, nullable=False),
    Column("judgement", String(8), nullable=True),  # the human's: PASS | FAIL | null (unlabelled)
    Column("source", String(16), nullable=False),  # upload | dataset | model
    Column("dataset_entry_id", String(36), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "project_id", "criterion_name", "created_at"),
)

# What each criterion version's judge said about each alignment row.
alignment_judgements = Table(
    "alignment_judgements",
    metadata,
    Column("row_id", String(36), ForeignKey("alignment_rows.id", ondelete="CASCADE"), primary_key=True),
    Column("criterion_id", String(36), ForeignKey("criteria.id", ondelete="CASCADE"), primary_key=True),
    Column("score", Float, nullable=True),
    Column("explanation", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("cost", Float, nullable=False, default=0.0),
    Column("created_at", BigInteger, nullable=False),
)

# Evaluations (spec B.5) over a dataset's TEST entries; their status is their `evaluate` job's.
evals = Table(
    "evals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("dataset_id", String(36), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("type", String(16), nullable=False),  # head_to_head | criteria | code
    Column("models", Text, nullable=False),  # JSON list of model ids ("dataset": the entry's output)
    Column("judge_model", String(300), nullable=True),
    Column("instructions", Text, nullable=True),
    Column("criteria", Text, nullable=False),  # JSON list of pinned versions, name@vN
    Column("grader", Text, nullable=True),  # JSON: {"builtin": name} | {"source": python}
    Column("num_entries", Integer, nullable=True),
    Column("both_orders", Boolean, nullable=False, default=False),
    Column("seed", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "project_id", "created_at"),
)

# The TEST entries an eval covers, chosen once when it is created.
eval_entries = Table(
    "eval_entries",
    metadata,
    Column("eval_id", String(36), ForeignKey("evals.id", ondelete="CASCADE"), primary_key=True),
    Column("entry_id", String(36), primary_key=True),
    Column("position", Integer, nullable=False),
)

# Model outputs on dataset entries, generated once and shared by every eval and alignment set of
# the project; an output answers the entry's input as it was (`input_hash`), so an edited input
# is answered anew.
model_outputs = Table(
    "model_outputs",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("model", String(300), primary_key=True),
    Column("input_hash", String(64), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("output", Text, nullable=False),
    Column("finish_reason", String(32), nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("cost", Float, nullable=False, default=0.0),
    Column("created_at", BigInteger, nullable=False),
)

# An eval's judgements: `model`'s score on an entry against `opponent` (head-to-head), by
# `criterion` (criteria) or by the grader (code); '' where a column does not apply.
eval_judgements = Table(
    "eval_judgements",
    metadata,
    Column("eval_id", String(36), ForeignKey("evals.id", ondelete="CASCADE"), primary_key=True),
    Column("entry_id", String(36), primary_key=True),
    Column("model", String(300), primary_key=True),
    Column("opponent", String(300), primary_key=True),
    Column("criterion", String(120), primary_key=True),
    Column("status", String(8), nullable=False),  # success | error
    Column("score", Float, nullable=True),
    Column("explanation", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("cost", Float, nullable=False, default=0.0),
    Column("details", Text, nullable=True),  # JSON: shown order, each order's verdict
    Column("created_at", BigInteger, nullable=False),
)

# Cached answers (`op-cache`, spec B.8) when the database is the cache store; the key hashes the
# project, the resolved model and the request (domain/cache_keys.py).
response_cache = Table(
    "response_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("model", String(300), nullable=False),  # as requested
    Column("response", LargeBinary, nullable=False),  # zlib-compressed chat.completion JSON
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index(None, "project_id", "model"),
    Index(None, "expires_at"),
)

# Responses API objects kept for `previous_response_id` and `GET /responses/{id}` (`store`).
stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(64), primary_key=True),  # resp_...
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("model", String(300), nullable=False),
    # zlib-compressed JSON: {"response": <response object>, "messages": <chat history incl. output>}
    Column("body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "project_id", "created_at"),
)

# A project's default fallback chain and retries for a model (`op-fallback`/`op-retries` win).
fallback_chains = Table(
    "fallback_chains",
    metadata,
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("model", String(300), primary_key=True),
    Column("fallbacks", Text, nullable=False),  # JSON list of models, tried in order
    Column("retries", Integer, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

# A project's mixture-of-agents configurations, served at `openpipe:moa-<slug>`.
moa_configs = Table(
    "moa_configs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("slug", String(100), nullable=False),
    Column("config", Text, nullable=False),  # JSON: proposers, candidates, layers, aggregator, prompts
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("project_id", "slug"),
)
