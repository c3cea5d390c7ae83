"""The one place errors become HTTP responses.

API paths get the OpenAI envelope plus OpenPipe's ``message``/``code``; anything unexpected is
logged with its traceback and shown as a 500 in the same envelope.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from tunepipe.api.json import json_response
from tunepipe.errors import InvalidRequest, TunepipeError, trpc_code

log = logging.getLogger(__name__)


def error_response(exc: TunepipeError) -> Response:
    return json_response(exc.envelope(), status_code=exc.status_code)


async def _tunepipe_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TunepipeError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    message = f"Input validation failed: `{loc}`: {first.get('msg')}" if loc else "Input validation failed"
    err = InvalidRequest(message, param=loc or None)
    body = err.envelope()
    body["issues"] = [
        {"message": f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"} for e in exc.errors()
    ]
    return json_response(body, status_code=400)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    return json_response(
        {
            "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None},
            "message": message,
            "code": trpc_code(exc.status_code),
        },
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _client_disconnected(_request: Request, _exc: Exception) -> Response:
    # The client hung up before its request body arrived: nothing failed here and nobody is left
    # to answer, so no traceback; the server drops this response.
    return Response(status_code=400)


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(TunepipeError("Internal server error"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(TunepipeError, _tunepipe_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected)
