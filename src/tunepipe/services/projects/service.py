"""Projects and their API keys: the default project a fresh installation starts with,
creating and deleting projects and keys (the CLI, or an admin key over HTTP; OpenPipe made these
in its UI), each key's rate limits, and the administrators' keys.

Servers keep keys in memory (:class:`~tunepipe.services.projects.auth.Authenticator`), so a
change of limits is recorded in the settings change feed in its own transaction: this process
and every other one apply the new limits to the key's next call, not after the cache's TTL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from tunepipe.db import projects as repo
from tunepipe.db.database import Database
from tunepipe.domain.projects import AdminKeyInfo, ApiKeyInfo, KeyLimits, Principal, Project
from tunepipe.errors import Conflict, InvalidRequest
from tunepipe.services.changes import ChangeFeed, write_and_announce
from tunepipe.services.projects.auth import SCOPE

LIMITS = tuple(f.name for f in dataclasses.fields(KeyLimits))
"""The limits a key can have: ``rpm``, ``tpm``, ``max_concurrency``."""
MAX_LIMIT = 2**31 - 1  # what the columns hold


@dataclass(frozen=True, slots=True)
class Bootstrap:
    project: Project
    new_key: str | None  # a key created just now, shown once


def _check(limits: Mapping[str, int | None]) -> None:
    for name, value in limits.items():
        if name not in LIMITS:
            raise InvalidRequest(f"Unknown limit {name!r}: use {', '.join(LIMITS)}", param=name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT
        ):
            raise InvalidRequest(
                f"`{name}` must be a positive integer (at most {MAX_LIMIT}), or null for no limit",
                param=name,
            )


class ProjectService:
    def __init__(self, db: Database, feed: ChangeFeed | None = None) -> None:
        self._db = db
        self._feed = feed

    async def bootstrap(self, api_key: str | None, admin_key: str | None = None) -> Bootstrap:
        """Make sure the default project exists with a key (``api_key`` if given), and that
        ``admin_key``, if given, is an admin key."""

        def boot(conn: Connection) -> tuple[Project, str | None]:
            project, key = repo.ensure_default_project(conn, api_key)
            if admin_key:
                repo.ensure_admin_key(conn, admin_key)
            return project, key

        try:
            project, key = await self._db.run(boot)
        except Conflict:  # another process created it at the same moment: it exists now
            project, key = await self._db.run(boot)
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

    async def delete(self, name: str) -> Project:
        """Delete a project and everything it owns (keys, logs, datasets, fine-tunes, jobs…).

        The default project stays: the server and the CLI fall back to it.
        """
        if name == repo.DEFAULT_PROJECT:
            raise InvalidRequest("The default project cannot be deleted", param="name")

        def delete(conn: Connection) -> Project:
            project = repo.get_project(conn, name)
            repo.delete_project(conn, project.id)
            return project

        # Its keys go with it: every process forgets the keys it remembered.
        return await write_and_announce(self._db, self._feed, SCOPE, lambda p: p.id, delete)

    async def create_admin_key(self, name: str = "") -> tuple[AdminKeyInfo, str]:
        """A new admin key (printed once)."""
        return await self._db.run(lambda conn: repo.create_admin_key(conn, name=name))

    async def list_admin_keys(self) -> list[AdminKeyInfo]:
        return await self._db.run(repo.list_admin_keys)

    async def revoke_admin_key(self, ref: str) -> AdminKeyInfo:
        """Revoke the admin key named by its id or prefix; servers refuse it from the next call."""
        return await write_and_announce(
            self._db, self._feed, SCOPE, lambda k: k.id, lambda conn: repo.delete_admin_key(conn, ref)
        )

    async def create_key(
        self, project: Project, *, read_only: bool, name: str, limits: KeyLimits | None = None
    ) -> tuple[ApiKeyInfo, str]:
        """A new key (printed once); nothing cached can know it yet, so no change notice."""
        if limits is not None:
            _check(dataclasses.asdict(limits))
        return await self._db.run(
            repo.create_api_key, project.id, read_only=read_only, name=name, limits=limits
        )

    async def list_keys(self, project: Project | None) -> list[ApiKeyInfo]:
        return await self._db.run(repo.list_api_keys, project.id if project else None)

    async def key(self, project: Project | None, ref: str) -> ApiKeyInfo:
        """The key named by its id or prefix, in ``project`` (None: in any project)."""
        return await self._db.run(repo.find_api_key, ref, project.id if project else None)

    async def set_limits(
        self, project: Project | None, ref: str, changes: Mapping[str, int | None]
    ) -> ApiKeyInfo:
        """Change some of a key's limits (a limit of None: none); the others stay as they are.

        ``changes`` maps names of :data:`LIMITS` to a positive integer or None.
        """
        if not changes:
            raise InvalidRequest(f"Nothing to change: give one of {', '.join(LIMITS)} (null removes it)")
        _check(changes)

        def write(conn: Connection) -> ApiKeyInfo:
            key = repo.find_api_key(conn, ref, project.id if project else None)
            limits = dataclasses.replace(key.limits or KeyLimits(), **changes)
            return repo.set_key_limits(conn, key.project_id, key.id, limits)

        return await write_and_announce(self._db, self._feed, SCOPE, lambda out: out.id, write)

    async def revoke_key(self, project: Project, key_id: str) -> ApiKeyInfo:
        """Revoke one of the project's keys; every server refuses it from its next call (the
        change is announced, so no cache keeps it alive)."""
        return await write_and_announce(
            self._db,
            self._feed,
            SCOPE,
            lambda k: k.id,
            lambda conn: repo.delete_api_key(conn, project.id, key_id),
        )
