"""Projects and their API keys: the default project a fresh installation starts with, and
creating projects and keys (the CLI; OpenPipe made these in its UI)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from tunepipe.db import projects as repo
from tunepipe.db.database import Database
from tunepipe.domain.projects import ApiKeyInfo, Principal, Project
from tunepipe.errors import Conflict


@dataclass(frozen=True, slots=True)
class Bootstrap:
    project: Project
    new_key: str | None  # a key created just now, shown once


class ProjectService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def bootstrap(self, api_key: str | None) -> Bootstrap:
        """Make sure the default project exists with a key (``api_key`` if given)."""
        try:
            project, key = await self._db.run(repo.ensure_default_project, api_key)
        except Conflict:  # another process created it at the same moment: it exists now
            project, key = await self._db.run(repo.ensure_default_project, api_key)
        return Bootstrap(project=project, new_key=key)

    async def named(self, name: str | None) -> Project:
        """The named project; the default one is created on first use (without a key)."""

        def find(conn: Connection) -> Project:
            if not name or name == repo.DEFAULT_PROJECT:
                return repo.ensure_default_project(conn, None, create_key=False)[0]
            return repo.get_project(conn, name)

        return await self._db.run(find)

    async def operator(self, name: str | None) -> Principal:
        """The shell of the server host, trusted like a read/write key of the named project."""
        return Principal(project=await self.named(name), key_id="cli", read_only=False)

    async def create(self, name: str) -> tuple[Project, str, str]:
        """A new project with its read/write and read-only keys (as OpenPipe creates them)."""

        def create(conn: Connection) -> tuple[Project, str, str]:
            project = repo.create_project(conn, name)
            _, rw = repo.create_api_key(conn, project.id, name="read/write")
            _, ro = repo.create_api_key(conn, project.id, name="read-only", read_only=True)
            return project, rw, ro

        return await self._db.run(create)

    async def all(self) -> list[Project]:
        return await self._db.run(repo.list_projects)

    async def create_key(self, project: Project, *, read_only: bool, name: str) -> tuple[ApiKeyInfo, str]:
        return await self._db.run(repo.create_api_key, project.id, read_only=read_only, name=name)

    async def list_keys(self, project: Project | None) -> list[ApiKeyInfo]:
        return await self._db.run(repo.list_api_keys, project.id if project else None)
