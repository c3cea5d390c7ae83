"""Riding out a database outage: which errors mean the database cannot be reached, a log line
per interval instead of a traceback per request, and the last values read, served while it is
down.

A gateway reads a key's principal and a project's routing settings from the database once per
cache TTL; when the database stops answering, calls of keys seen recently go on being served
from what was last read (:class:`LastKnown`, up to ``max_age_s`` old), and only keys never
seen (or forgotten by a change notice) are refused with a 503 (:class:`DatabaseUnavailable`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tunepipe.errors import DatabaseUnavailable

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (refused, dropped, locked, pool
    exhausted) rather than that a statement or its data is wrong."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Throttled:
    """One log line per ``interval_s`` for a condition that repeats (with how many were not
    logged), and one when it ends. Thread-safe."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._since: float | None = None  # when the condition began
        self._last = 0.0
        self._quiet = 0

    @property
    def active(self) -> bool:
        return self._since is not None

    def error(self, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if self._since is None:
                self._since = now
            elif now - self._last < self._interval_s:
                self._quiet += 1
                return
            quiet, self._quiet, self._last = self._quiet, 0, now
            lasting = now - self._since
        suffix = f" (for {lasting:.0f} s; {quiet} more like it not logged)" if quiet or lasting >= 1 else ""
        self._logger.error(message + suffix, *args)

    def recovered(self, message: str, *args: object) -> None:
        with self._lock:
            if self._since is None:
                return
            lasting = time.monotonic() - self._since
            self._since, self._quiet, self._last = None, 0, 0.0
        self._logger.warning(message + f" (after {lasting:.1f} s)", *args)


class LastKnown(Generic[K, V]):
    """The last value read for each key (bounded, least recently read out first), served for up
    to ``max_age_s`` while the database cannot be reached."""

    def __init__(self, what: str, *, maxsize: int, max_age_s: float, outage: Throttled) -> None:
        self._what = what
        self._maxsize = maxsize
        self._max_age_s = max_age_s
        self._outage = outage
        self._values: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def remember(self, key: K, value: V) -> V:
        self._values[key] = (time.monotonic(), value)
        self._values.move_to_end(key)
        if len(self._values) > self._maxsize:
            self._values.popitem(last=False)
        self._outage.recovered("database reachable again: %s read from it", self._what)
        return value

    def recall(self, key: K, error: BaseException) -> V:
        """The value last read for ``key`` if recent enough, else :class:`DatabaseUnavailable`."""
        self._outage.error(
            "database unreachable (%s): API keys and project settings read in the last %.0f s are "
            "served as they were, other keys get 503 database_unavailable",
            summary(error),
            self._max_age_s,
        )
        found = self._values.get(key)
        if found is not None and time.monotonic() - found[0] <= self._max_age_s:
            return found[1]
        raise DatabaseUnavailable() from None

    def forget(self, matches: Callable[[K, V], bool] | None = None) -> None:
        """Drop every value (``matches`` None) or those it matches: a change made them wrong."""
        if matches is None:
            self._values.clear()
            return
        for key in [k for k, (_, v) in self._values.items() if matches(k, v)]:
            del self._values[key]


def summary(error: BaseException) -> str:
    """The first line of a driver's message, without SQLAlchemy's statement and background link."""
    detail = getattr(error, "orig", None) or error
    text = str(detail).strip().splitlines()
    return f"{type(detail).__name__}: {text[0] if text else ''}"
