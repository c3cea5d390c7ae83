"""One use case, one transaction, one thread hop.

Repository functions take a :class:`~sqlalchemy.Connection` and never open one, so a use case
composes as many of them as it needs inside one transaction: :meth:`Database.run` takes a
function of a connection, runs it on a worker thread inside ``engine.begin()`` (committed when
it returns, rolled back when it raises), and hands back what it returned. The event loop never
waits on the database, and a use case is atomic on Postgres; on SQLite the driver opens the
write transaction at the first write, so what a use case writes is atomic too (reads before it
see committed data, and unique constraints guard the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(conn, *args, **kwargs)`` in one transaction, on a worker thread."""
        return await asyncio.to_thread(self.run_sync, fn, *args, **kwargs)

    def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """The same, on the calling thread (for code that already runs on a worker thread)."""
        with self.engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    def dispose(self) -> None:
        self.engine.dispose()
