"""A project's mixture-of-agents configurations: create, replace, list, show, delete.

A configuration is checked when it is written: its shape by :func:`tunepipe.domain.moa.make_config`
(the caller builds it), and here that every model it names routes for the project, so a typo is
a 400 naming the field now rather than a failed call later. Routing is the gateway's, a room
above this one, so the check is handed in (:class:`ModelCheck`: the router). Every write records
a change notice under the ``providers`` scope in its transaction: routers cache a project's
configurations with its provider settings and drop them together, in every process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy import Connection

from tunepipe.db import moa as repo
from tunepipe.db.database import Database
from tunepipe.domain.moa import MoaConfig, ProjectMoa, check_slug
from tunepipe.domain.model_ref import ModelRef, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, NotFound, TunepipeError
from tunepipe.services.changes import ChangeFeed, write_and_announce
from tunepipe.services.projects.providers import SCOPE

T = TypeVar("T")


class ModelCheck(Protocol):
    async def resolve(self, principal: Principal, ref: ModelRef) -> object:
        """Route ``ref`` for the principal's project; raise when it cannot be called."""
        ...


class MoaConfigs:
    def __init__(self, db: Database, models: ModelCheck, feed: ChangeFeed | None = None) -> None:
        self._db = db
        self._models = models
        self._feed = feed

    async def create(self, principal: Principal, slug: str, config: MoaConfig) -> ProjectMoa:
        check_slug(slug)
        await self._check_models(principal, config)
        project_id = principal.project.id
        return await self._write(project_id, lambda conn: repo.create(conn, project_id, slug, config))

    async def replace(self, principal: Principal, slug: str, config: MoaConfig) -> ProjectMoa:
        await self._check_models(principal, config)
        project_id = principal.project.id

        def replace(conn: Connection) -> ProjectMoa:
            found = repo.replace(conn, project_id, slug, config)
            if found is None:
                raise _missing(slug)
            return found

        return await self._write(project_id, replace)

    async def list_configs(self, principal: Principal) -> list[ProjectMoa]:
        return list((await self._db.run(repo.list_configs, principal.project.id)).values())

    async def get(self, principal: Principal, slug: str) -> ProjectMoa:
        found = await self._db.run(repo.get, principal.project.id, slug)
        if found is None:
            raise _missing(slug)
        return found

    async def delete(self, principal: Principal, slug: str) -> None:
        project_id = principal.project.id

        def delete(conn: Connection) -> None:
            if not repo.remove(conn, project_id, slug):
                raise _missing(slug)

        await self._write(project_id, delete)

    async def _check_models(self, principal: Principal, config: MoaConfig) -> None:
        named = [(f"proposers[{i}]", m) for i, m in enumerate(config.proposers)]
        for param, model in [*named, ("aggregator", config.aggregator)]:
            try:
                await self._models.resolve(principal, parse_model(model))
            except TunepipeError as exc:
                raise InvalidRequest(f"`{param}`: {exc.message}", param=param) from exc

    async def _write(self, project_id: str, fn: Callable[[Connection], T]) -> T:
        """``fn`` and the change notice in one transaction, then this process's caches dropped."""
        return await write_and_announce(self._db, self._feed, SCOPE, lambda _: project_id, fn)


def _missing(slug: str) -> NotFound:
    return NotFound(f"No mixture-of-agents configuration {slug!r} in this project", param="slug")
