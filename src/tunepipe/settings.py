"""Runtime settings: one object, built once from ``TUNEPIPE_*`` variables and injected.

Provider defaults keep the names their own SDKs use (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``ANTHROPIC_*``, ``GEMINI_*``) so an existing environment works unchanged; the
``TUNEPIPE_``-prefixed spelling wins where both are set. ``docs/reference/settings.md`` is
generated from this class (``make docs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tunepipe.domain.network import NetworkPolicy


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"TUNEPIPE_{name}", name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEPIPE_", extra="ignore")

    home: Path = Field(Path("~/.tunepipe"), description="Where the SQLite database and key file live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; `postgresql://…` selects Postgres. Default: SQLite under `home`."
    )
    api_key: str | None = Field(
        None, description="Register this key for the default project instead of generating one."
    )
    admin_key: SecretStr | None = Field(
        None,
        description="Register this admin key (projects and base models over HTTP) when `serve` starts; "
        "`tunepipe admin create-key` makes others.",
    )
    secret_key: str | None = Field(
        None,
        description="Fernet key that encrypts stored provider keys; default: a key file under `home`. "
        "Servers sharing a database must share it.",
    )
    host: str = Field("127.0.0.1", description="Interface `tunepipe serve` binds.")
    port: int = Field(8000, description="Port `tunepipe serve` listens on.")
    workers: int = Field(1, description="Server processes.")
    max_request_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1,
        description="Largest request body accepted (bytes); a larger one is refused with a 413 "
        "(`request_too_large`) while it streams in.",
    )
    max_json_depth: int = Field(
        128,
        ge=1,
        le=250,
        description="Deepest nesting of arrays and objects a JSON request body may have; a deeper "
        "one is refused with a 400 (`json_too_deep`).",
    )
    log_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request or response body kept whole in a log row (bytes of JSON); a "
        'larger one is stored as `{"_truncated": true, "bytes": <size>, "head": "<its start>"}`.',
    )

    log_queue_size: int = Field(
        20_000, description="Log records held in memory before handlers wait for the writer (back-pressure)."
    )
    log_batch_size: int = Field(1_000, description="Most log records written in one transaction.")
    log_linger_s: float = Field(
        0.05, description="How long the log writer waits for a batch to fill before writing what it has."
    )
    log_enqueue_timeout_s: float = Field(
        5.0,
        description="How long a handler waits for queue space before the record is dropped and counted "
        "(with the spool a full queue waits for nothing: records past it are read back from the spool).",
    )
    log_spool: bool = Field(
        True,
        description="Append every request log to a spool file under `home` before its call is "
        "answered, so logs survive the process dying or the database being down (docs/logging.md).",
    )
    log_close_timeout_s: float = Field(
        10.0,
        ge=0,
        description="At shutdown, how long the log writer keeps trying an unreachable database; what "
        "is left stays in the spool and is written by the next start.",
    )
    db_stale_max_s: float = Field(
        3600.0,
        ge=0,
        description="While the database cannot be reached, API keys and project settings read from "
        "it up to this long ago keep being served; other keys get a 503.",
    )
    db_error_log_interval_s: float = Field(
        30.0, gt=0, description="While the database cannot be reached, one error line per this interval."
    )

    upstream_timeout_s: float = Field(
        600.0, description="Longest wait for a provider's next bytes (504 after)."
    )
    upstream_connect_timeout_s: float = Field(10.0, description="Longest wait to connect to a provider.")
    auth_cache_ttl_s: float = Field(
        5.0, description="Seconds an API key or provider setting is served from memory before re-reading."
    )
    change_poll_s: float = Field(
        0.5,
        description="How often a server reads the feed of settings changes made by other processes "
        "(its cached copies of them are dropped at once).",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (`redis://host:6379/0`): settings changes reach every server at once "
        "over pub/sub instead of at the next poll, and the response cache and rate limits are "
        "shared by every process and host.",
    )
    cache_ttl_s: int = Field(
        7 * 24 * 3600,
        ge=1,
        description="How long a cached answer is kept (`op-cache-ttl` sets it per request).",
    )
    retry_max_wait_s: float = Field(
        20.0, ge=0, description="Most one call waits in total between retries (`op-retries`)."
    )
    breaker_failures: int = Field(
        3,
        ge=1,
        description="Failures in a row after which a model is skipped by fallback chains for a while.",
    )
    breaker_cooldown_s: float = Field(5.0, ge=0, description="How long a failing model is skipped.")

    openai_base_url: str = Field(
        "https://api.openai.com/v1",
        validation_alias=_env("OPENAI_BASE_URL"),
        description="Default upstream for bare and `openai:` models.",
    )
    openai_api_key: str | None = Field(
        None, validation_alias=_env("OPENAI_API_KEY"), description="Default OpenAI key."
    )
    anthropic_base_url: str = Field(
        "https://api.anthropic.com",
        validation_alias=_env("ANTHROPIC_BASE_URL"),
        description="Upstream for `anthropic:` models.",
    )
    anthropic_api_key: str | None = Field(
        None, validation_alias=_env("ANTHROPIC_API_KEY"), description="Default Anthropic key."
    )
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com/v1beta/openai",
        validation_alias=_env("GEMINI_BASE_URL"),
        description="Gemini's OpenAI-compatible endpoint, for `gemini:` models.",
    )
    gemini_api_key: str | None = Field(
        None, validation_alias=_env("GEMINI_API_KEY"), description="Default Gemini key."
    )

    upstream_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Where URLs a project sets (external providers, provider-key base URLs) may "
        "lead besides public addresses, comma-separated: networks (`10.0.0.0/8`), addresses "
        "(`127.0.0.1`, `::1`) and host names (`vllm.internal`, `*.svc.cluster.local`). URLs set "
        "in this environment (`OPENAI_BASE_URL`, …) are trusted as they are.",
    )
    upstream_allow_private: bool = Field(
        False,
        description="Let URLs a project sets lead to loopback and private addresses too (RFC 1918, "
        "CGNAT, unique-local IPv6); link-local, multicast and reserved ones stay refused unless "
        "`upstream_allow` names them.",
    )

    default_model: bool = Field(
        True,
        description="Make the offline default model (SmolLM2-135M-Instruct) available when `serve` starts.",
    )
    local_device: str | None = Field(
        None, description="Torch device for local models (default: cuda if present, else cpu)."
    )
    local_memory_budget_gb: float = Field(
        8.0,
        description="Memory for loaded local models before the least recently used are unloaded.",
    )
    local_max_batch: int = Field(32, description="Most sequences decoded together per model.")
    local_threads: int = Field(
        0, description="CPU threads for local inference (0: every core this process may use)."
    )
    local_default_max_tokens: int = Field(
        1024, description="Completion length for local models when a request sets no max_tokens."
    )

    worker: bool = Field(
        True, description="Run a job worker inside `tunepipe serve` (`tunepipe worker` runs one alone)."
    )
    worker_kinds: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Job kinds a worker runs, comma-separated (`train`, `import_logs`, `relabel`, "
        "`evaluate`, `align`); "
        "empty: all of them.",
    )
    worker_dataset_jobs: int = Field(
        2, ge=1, description="Dataset jobs (imports, relabels) one worker runs at a time."
    )
    worker_eval_jobs: int = Field(
        2, ge=1, description="Evaluation and criterion-alignment jobs one worker runs at a time."
    )
    eval_concurrency: int = Field(
        8, ge=1, description="Model calls (generation and judging) one evaluation keeps in flight."
    )
    judge_concurrency: int = Field(
        32, ge=1, description="Judge calls one process keeps in flight (criteria, evaluations, alignment)."
    )
    grader_timeout_s: float = Field(
        5.0, gt=0, description="Wall-clock limit for one call of a code grader (an evaluation's row)."
    )
    grader_cpu_s: int = Field(30, ge=1, description="CPU seconds one code-grader process may use.")
    grader_memory_mb: int = Field(512, ge=64, description="Memory one code-grader process may use.")
    worker_poll_s: float = Field(2.0, description="How often an idle worker looks for queued jobs.")
    job_heartbeat_s: float = Field(
        5.0, description="How often a worker records that its running job is alive."
    )
    job_stale_after_s: float = Field(
        60.0,
        description="A running job whose heartbeat is older than this belongs to a dead worker: it is "
        "retried, or failed once its attempts are used up.",
    )
    job_max_attempts: int = Field(
        2, description="Attempts a job gets (a crashed attempt, or one whose worker died, is retried)."
    )
    dataset_import_max: int = Field(
        100_000, ge=1, description="Most entries one import from request logs creates."
    )
    train_early_stopping: bool = Field(
        True,
        description="Stop a fine-tune early once the loss on rows held out from its TRAIN split stops "
        "improving, when the request sets no epochs (the epoch rule stays the upper bound).",
    )
    training_device: str | None = Field(
        None, description="Torch device for training (default: cuda if present, else cpu)."
    )

    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token `GET /metrics` asks for; unset: the metrics are open to anyone "
        "who reaches the server.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins browsers may call the API from, comma-separated (`*`: any); empty: "
        "no CORS headers.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OTLP/HTTP collector base URL (`http://host:4318`): model calls are traced "
        "to `<url>/v1/traces`. Unset (and no traces endpoint): no tracing.",
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        None,
        validation_alias=_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        description="Full OTLP/HTTP traces URL; wins over `otel_exporter_otlp_endpoint`.",
    )
    otel_instrumentation_genai_capture_message_content: bool = Field(
        False,
        validation_alias=_env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
        description="Put prompts and completions in the traces (`gen_ai.input.messages`, "
        "`gen_ai.output.messages`).",
    )

    @field_validator("worker_kinds", "cors_origins", "upstream_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("upstream_allow")
    @classmethod
    def _network_entries(cls, value: list[str]) -> list[str]:
        NetworkPolicy.parse(value)  # a bad entry stops the server at startup, not a call later
        return value

    @property
    def network_policy(self) -> NetworkPolicy:
        """Where URLs a project chose may lead (:mod:`tunepipe.domain.network`)."""
        return NetworkPolicy.parse(self.upstream_allow, allow_private=self.upstream_allow_private)

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'tunepipe.db'}"
