"""The one place errors become HTTP responses.

API paths get the OpenAI envelope plus OpenPipe's ``message``/``code``; anything unexpected is
logged with its traceback and shown as a 500 in the same envelope. A framework error (an
unknown route, a wrong method) is rendered as the error of :mod:`tunepipe.errors` its status
stands for, so its ``type`` is the same as the services' (a 404 is ``not_found_error``
wherever it comes from). A request whose only fault is an identifier that names nothing (one
with a NUL character, :data:`tunepipe.protocol.types.Id`) is a 404, not a validation error.

An unexpected exception is not rendered by an exception handler (Starlette's would answer and
then raise it on, and the server would drop the connection): the request-id middleware answers
it with :func:`unexpected_error`, which logs it once.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from tunepipe.api.json import json_response
from tunepipe.db.outage import Throttled, unavailable
from tunepipe.errors import DatabaseUnavailable, InvalidRequest, NotFound, TunepipeError, for_status

log = logging.getLogger(__name__)

_LOCATIONS = ("body", "query", "path", "header")


def error_response(exc: TunepipeError, headers: dict[str, str] | None = None) -> Response:
    return json_response(exc.envelope(), status_code=exc.status_code, headers=headers or exc.headers)


# A database that stops answering fails every request that reads it: one line per interval, not
# a traceback per request (the authenticator and the router have their own, for what they serve
# stale meanwhile).
_outage = Throttled(log, 30.0)


def unexpected_error(exc: Exception) -> Response:
    """The 500 for an exception nothing expected, logged here with its traceback; a 503 for a
    database that cannot be reached, logged once per interval."""
    if unavailable(exc):
        _outage.error("the database cannot be reached: %s", exc.__class__.__name__)
        return error_response(DatabaseUnavailable())
    log.exception("unhandled error", exc_info=exc)
    return error_response(TunepipeError("Internal server error"))


class BodyReadError(StarletteHTTPException):
    """A :class:`~tunepipe.errors.TunepipeError` raised while a request body is read (a body
    over the size limit, or nested too deep). FastAPI turns anything raised while it reads a
    body into a 400 of its own, except an ``HTTPException``: this one gets through and is
    rendered as the error it carries."""

    def __init__(self, error: TunepipeError) -> None:
        super().__init__(error.status_code, error.message, headers=error.headers)
        self.error = error


async def _tunepipe_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TunepipeError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p not in _LOCATIONS)
    if first.get("type") == "unknown_id":
        return error_response(
            NotFound(f"No {loc or 'such item'} {first.get('input')!r} here", param=loc or None)
        )
    message = f"Input validation failed: `{loc}`: {first.get('msg')}" if loc else "Input validation failed"
    body = InvalidRequest(message, param=loc or None).envelope()
    body["issues"] = [
        {"message": f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"} for e in errors
    ]
    return json_response(body, status_code=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyReadError):
        return error_response(exc.error)
    message = str(exc.detail)
    if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
        message = f"{message}: {request.method} {request.url.path}"
    return error_response(for_status(exc.status_code, message), headers=getattr(exc, "headers", None))


async def _client_disconnected(_request: Request, _exc: Exception) -> Response:
    # The client hung up before its request body arrived: nothing failed here and nobody is left
    # to answer, so no traceback; the server drops this response.
    return Response(status_code=400)


def install(app: FastAPI) -> None:
    app.add_exception_handler(TunepipeError, _tunepipe_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
