"""Projects, their keys and their provider settings: the values every use case is scoped by;
and the installation's administrators, who are scoped by no project.

Three roles hold keys. A project's read/write key and read-only key act inside that project
only (:class:`Principal`). An admin key (:class:`Admin`) manages the installation itself:
projects, base models, installation-wide settings. It belongs to no project, so it reaches no
project's data: project-scoped routes refuse it rather than guess which project is meant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: str
    project_id: str
    name: str
    key_prefix: str
    read_only: bool
    created_at: int
    limits: KeyLimits | None = None  # None when the key has no limit


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's rate limits (None: no limit): requests and tokens per minute, requests in flight."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    @property
    def any(self) -> bool:
        return bool(self.rpm or self.tpm or self.max_concurrency)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's project, what the key may do, and how fast."""

    project: Project
    key_id: str
    read_only: bool
    limits: KeyLimits | None = None  # None when the key has no limit (nothing to count)


@dataclass(frozen=True, slots=True)
class Admin:
    """An administrator of the installation: an admin key, or the shell of the server host
    (``key_id`` ``"cli"``)."""

    key_id: str


@dataclass(frozen=True, slots=True)
class AdminKeyInfo:
    id: str
    name: str
    key_prefix: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ProviderKey:
    provider: str
    api_key: str | None
    base_url: str | None


@dataclass(frozen=True, slots=True)
class ExternalModel:
    slug: str
    input_cost_per_m: float | None
    output_cost_per_m: float | None


@dataclass(frozen=True, slots=True)
class ExternalProvider:
    id: str
    slug: str
    kind: str
    base_url: str
    api_key: str | None
    api_version: str | None
    models: tuple[ExternalModel, ...]
