"""The HTTP conventions every response follows: an ``x-request-id``, Prometheus counts, CORS.

Pure ASGI middleware, not Starlette's ``BaseHTTPMiddleware``: that one runs the app in a task
of its own and relays the body through a memory stream, which costs the hot path (see
docs/performance.md) and holds back streamed responses. Each of these wraps ``send`` once and
does nothing per body chunk.

Order, outermost first: request id (so every response has one, CORS answers and errors
included), metrics (so the time counted is the whole response's), CORS (only when configured).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunepipe.api.errors import error_response
from tunepipe.domain.request_context import new_request_id, request_id, usable_request_id
from tunepipe.errors import TunepipeError
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

    An exception that escapes the app before a response began is answered here (the same 500
    the exception handler renders, with the id) and raised on, so it is still logged once."""

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
        except Exception:
            if not started:
                response = error_response(
                    TunepipeError("Internal server error"), headers={REQUEST_ID_HEADER: rid}
                )
                await response(scope, receive, send)
            raise
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
