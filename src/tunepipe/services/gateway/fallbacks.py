"""A project's routing settings for failures: default fallback chains and retries per model, and
what the circuit breaker knows of its models (``GET /routing``).

A chain is validated when it is set (every model must route: a typo is a 400 now, not a failed
fallback later) and written with a change notice in the same transaction, so every process's
router drops its cached copy at once (:mod:`tunepipe.services.changes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from tunepipe.db import routing as repo
from tunepipe.db.database import Database
from tunepipe.domain.model_ref import parse_model
from tunepipe.domain.projects import Principal
from tunepipe.domain.routing import MAX_FALLBACKS, MAX_RETRIES, FallbackChain
from tunepipe.errors import InvalidRequest, NotFound, TunepipeError
from tunepipe.services.changes import ChangeFeed, write_and_announce
from tunepipe.services.gateway.calls import Breaker
from tunepipe.services.gateway.routing import Router
from tunepipe.services.projects.providers import SCOPE


class Fallbacks:
    def __init__(
        self, db: Database, router: Router, breaker: Breaker, feed: ChangeFeed | None = None
    ) -> None:
        self._db = db
        self._router = router
        self._breaker = breaker
        self._feed = feed

    async def overview(self, principal: Principal) -> dict[str, Any]:
        chains = await self._db.run(repo.list_chains, principal.project.id)
        return {
            "fallbacks": [
                {"model": c.model, "fallbacks": list(c.fallbacks), "retries": c.retries}
                for c in chains.values()
            ],
            "models": self._breaker.state(principal.project.id),
        }

    async def set(
        self, principal: Principal, model: str, fallbacks: list[str], retries: int | None
    ) -> FallbackChain:
        if len(fallbacks) > MAX_FALLBACKS:
            raise InvalidRequest(f"At most {MAX_FALLBACKS} fallbacks", param="fallbacks")
        if retries is not None and not 0 <= retries <= MAX_RETRIES:
            raise InvalidRequest(f"`retries` must be between 0 and {MAX_RETRIES}", param="retries")
        for field, name in [("model", model), *((f"fallbacks[{i}]", m) for i, m in enumerate(fallbacks))]:
            try:
                await self._router.resolve(principal, parse_model(name))
            except TunepipeError as exc:
                raise InvalidRequest(f"`{field}`: {exc.message}", param=field) from exc
        chain = FallbackChain(model, tuple(m for m in dict.fromkeys(fallbacks) if m != model), retries)
        await self._write(principal, lambda conn: repo.set_chain(conn, principal.project.id, chain))
        return chain

    async def delete(self, principal: Principal, model: str) -> None:
        def delete(conn: Connection) -> None:
            if not repo.delete_chain(conn, principal.project.id, model):
                raise NotFound(f"No fallback chain for {model!r} in this project", param="model")

        await self._write(principal, delete)

    async def _write(self, principal: Principal, fn: Callable[[Connection], None]) -> None:
        project_id = principal.project.id
        await write_and_announce(self._db, self._feed, SCOPE, lambda _: project_id, fn)
