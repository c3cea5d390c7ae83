"""Runtime settings: one object, built once from ``TUNEPIPE_*`` variables and injected.

Provider defaults keep the names their own SDKs use (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``ANTHROPIC_*``, ``GEMINI_*``) so an existing environment works unchanged; the
``TUNEPIPE_``-prefixed spelling wins where both are set.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"TUNEPIPE_{name}", name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEPIPE_", extra="ignore")

    home: Path = Path("~/.tunepipe")
    database_url: str | None = None
    api_key: str | None = None
    # Encrypts provider keys at rest; defaults to a key file under `home`.
    secret_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1

    # Request logging: the handler only enqueues; one writer drains in batches.
    log_queue_size: int = 20_000
    log_batch_size: int = 1_000
    log_enqueue_timeout_s: float = 5.0

    upstream_timeout_s: float = 600.0
    upstream_connect_timeout_s: float = 10.0
    # How long an API-key or provider lookup is served from memory before re-reading the DB.
    auth_cache_ttl_s: float = 5.0

    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias=_env("OPENAI_BASE_URL"))
    openai_api_key: str | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    anthropic_base_url: str = Field("https://api.anthropic.com", validation_alias=_env("ANTHROPIC_BASE_URL"))
    anthropic_api_key: str | None = Field(None, validation_alias=_env("ANTHROPIC_API_KEY"))
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com/v1beta/openai",
        validation_alias=_env("GEMINI_BASE_URL"),
    )
    gemini_api_key: str | None = Field(None, validation_alias=_env("GEMINI_API_KEY"))

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'tunepipe.db'}"
