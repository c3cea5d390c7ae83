"""Installation-level use cases: open and migrate the database, make sure a default project
with a key exists, manage projects and keys (used by the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from tunepipe.db import projects as project_repo
from tunepipe.db.engine import make_engine
from tunepipe.db.migrate import upgrade
from tunepipe.db.records import ApiKeyInfo, Project
from tunepipe.db.secrets import SecretBox
from tunepipe.services.base_models import BaseModelService
from tunepipe.services.providers import ProviderService
from tunepipe.settings import Settings


@dataclass(frozen=True, slots=True)
class Bootstrap:
    project: Project
    new_key: str | None  # a key created just now, shown once


def open_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    if migrate:
        upgrade(engine)
    return engine


def bootstrap(settings: Settings, engine: Engine) -> Bootstrap:
    project, new_key = project_repo.ensure_default_project(engine, settings.api_key)
    return Bootstrap(project=project, new_key=new_key)


def project_named(engine: Engine, name: str | None) -> Project:
    """The named project; the default one is created on first use (without a key)."""
    if not name or name == project_repo.DEFAULT_PROJECT:
        return project_repo.ensure_default_project(engine, None, create_key=False)[0]
    return project_repo.get_project(engine, name)


def create_project(engine: Engine, name: str) -> tuple[Project, str, str]:
    """A new project with its read/write and read-only keys (as OpenPipe creates them)."""
    project = project_repo.create_project(engine, name)
    _, rw = project_repo.create_api_key(engine, project.id, name="read/write")
    _, ro = project_repo.create_api_key(engine, project.id, name="read-only", read_only=True)
    return project, rw, ro


def list_projects(engine: Engine) -> list[Project]:
    return project_repo.list_projects(engine)


def create_key(engine: Engine, project: Project, *, read_only: bool, name: str) -> tuple[ApiKeyInfo, str]:
    return project_repo.create_api_key(engine, project.id, read_only=read_only, name=name)


def list_keys(engine: Engine, project: Project | None) -> list[ApiKeyInfo]:
    return project_repo.list_api_keys(engine, project.id if project else None)


def provider_service(settings: Settings, engine: Engine) -> ProviderService:
    return ProviderService(engine, SecretBox.from_settings(settings.secret_key, settings.home_dir))


def base_model_service(settings: Settings, engine: Engine) -> BaseModelService:
    return BaseModelService(engine, settings.home_dir)
