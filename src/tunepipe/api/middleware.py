"""The HTTP conventions every response follows: an ``x-request-id``, Prometheus counts, CORS,
bounded request bodies.

Pure ASGI middleware, not Starlette's ``BaseHTTPMiddleware``: that one runs the app in a task
of its own and relays the body through a memory stream, which costs the hot path (see
docs/performance.md) and holds back streamed responses. Each of these wraps ``send`` once; only
the body limit looks at body chunks, and then only at their length.

Order, outermost first: request id (so every response has one, CORS answers and errors
included, and an unexpected error becomes a 500 there), metrics (so the time counted is the
whole response's), CORS (only when configured), body limits (so a 413 carries CORS headers).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunepipe.api.errors import BodyReadError, error_response, unexpected_error
from tunepipe.domain import json_depth
from tunepipe.domain.request_context import new_request_id, request_id, usable_request_id
from tunepipe.errors import JsonTooDeep, RequestTooLarge
from tunepipe.settings import Settings
from tunepipe.telemetry.metrics import UNMATCHED, HttpObserver

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = REQUEST_ID_HEADER.encode()

# What browser clients send: the OpenAI and Anthropic SDKs (their x-stainless-* telemetry
# headers, Anthropic's version and key headers), OpenPipe's op-* options.
CORS_ALLOW_HEADERS = (
    "authorization",
    "content-type",
    "accept",
    "x-request-id",
    "idempotency-key",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-read-timeout",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-stream-helper",
    "x-stainless-timeout",
    "op-log-request",
    "op-tags",
    "op-cache",
    "op-cache-ttl",
    "op-criteria",
    "op-fallback",
    "op-retries",
)
# What a browser script may read of a response.
CORS_EXPOSE_HEADERS = (
    "x-request-id",
    "op-cache-status",
    "op-model",
    "op-attempts",
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


class RequestIdMiddleware:
    """Every HTTP response carries ``x-request-id``: the client's own when it sent a usable one
    (printable ASCII, at most 200 characters), else a new one. The id is in
    :data:`~tunepipe.domain.request_context.request_id` while the request is served, so the
    log record of a call keeps it.

    An exception that escapes the app before a response began is logged and answered here: a
    500 in the error envelope, with the id. It is not raised on: the server would then drop the
    connection under a client that was told nothing of it, and the client's next request on
    that pooled connection would fail. An exception after the response began is raised on, and
    the server closes the connection, which is the only way left to tell the client that the
    response is cut short."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: str | None = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                rid = usable_request_id(value)
                break
        if rid is None:
            rid = new_request_id()
        header = (_REQUEST_ID, rid.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # A new list: a response object may be sent more than once.
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise
            await unexpected_error(exc)(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class MetricsMiddleware:
    """Counts each HTTP request by route template, method and status class, and times it to
    the end of its response body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._observer = HttpObserver()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception with no response: the server answers 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._observer.observe(
                route_template(scope), scope["method"], status, time.perf_counter() - started
            )


class BodyLimitMiddleware:
    """Request bodies are bounded, as they stream in, before anything buffers them whole.

    * Size: a body over ``max_bytes`` is a 413 (``request_too_large``) and the connection is
      closed. A ``Content-Length`` over the limit is answered before the app runs; a body
      without one (chunked) is counted as it arrives, and the read that crosses the limit fails
      with the 413, so at most ``max_bytes`` are ever held.
    * Depth: the JSON nesting limit (:mod:`tunepipe.domain.json_depth`) is put in force for the
      request. FastAPI's operations parse JSON bodies themselves, so their body is checked here
      once it is complete (a 400, ``json_too_deep``); the gateway's plain routes check it where
      they parse, so that the refused call is logged like any other invalid request.

    Per request this costs a scan of the headers and a wrapper around ``receive``; per chunk,
    an addition."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        is_json = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await error_response(_too_large(limit))(scope, receive, send)
                    return
            elif name == b"content-type":
                is_json = _is_json(value)
        received = 0
        chunks: list[bytes] | None = None

        async def receive_bounded() -> Message:
            nonlocal received, chunks
            message = await receive()
            if message["type"] != "http.request":
                return message
            body: bytes = message.get("body", b"")
            received += len(body)
            if received > limit:
                raise BodyReadError(_too_large(limit))
            if is_json and isinstance(scope.get("route"), APIRoute):
                if chunks is None:
                    chunks = []
                chunks.append(body)
                if not message.get("more_body", False):
                    _check_depth(chunks)
            return message

        token = json_depth.max_depth.set(self.max_depth)
        try:
            await self.app(scope, receive_bounded, send)
        finally:
            json_depth.max_depth.reset(token)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"Request body is larger than the limit of {limit} bytes")


def _is_json(content_type: bytes) -> bool:
    """What FastAPI parses as JSON: ``application/json`` and ``application/*+json``."""
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def _check_depth(chunks: list[bytes]) -> None:
    try:
        json_depth.check_depth(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    except JsonTooDeep as exc:
        raise BodyReadError(exc) from None


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (``/api/v1/logs/{id}``), so that a
    label never holds an id; ``unmatched`` when no route did.

    FastAPI's routes leave themselves in the scope; a plain Starlette route (the chat hot path)
    leaves only its endpoint, and without path parameters its template is the path itself."""
    route: Any = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", UNMATCHED))
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return UNMATCHED
    if not scope.get("path_params"):
        return str(scope["path"])
    for candidate in getattr(scope.get("app"), "routes", ()):
        if getattr(candidate, "endpoint", None) is endpoint and candidate.matches(scope)[0] is Match.FULL:
            return str(candidate.path)
    return UNMATCHED


def install(app: Any, settings: Settings) -> None:
    """Add the middleware to ``app`` (a Starlette app, before it starts)."""
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_request_bytes, max_depth=settings.max_json_depth
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=list(CORS_ALLOW_HEADERS),
            expose_headers=list(CORS_EXPOSE_HEADERS),
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)  # added last: the outermost
