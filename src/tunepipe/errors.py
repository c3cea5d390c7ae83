"""Every error tunepipe raises on purpose, and how it is shown to a client.

::

    TunepipeError                 500 api_error              INTERNAL_SERVER_ERROR
    ├── InvalidRequest            400 invalid_request_error  BAD_REQUEST
    │   └── JsonTooDeep           400 (code json_too_deep: a body nested past the limit)
    ├── AuthenticationFailed      401 authentication_error   UNAUTHORIZED
    ├── PermissionDenied          403 permission_error       FORBIDDEN
    │   └── ReadOnlyKey           403 (write call with a read-only key)
    ├── NotFound                  404 not_found_error        NOT_FOUND
    ├── MethodNotAllowed          405 invalid_request_error  METHOD_NOT_SUPPORTED
    ├── Conflict                  409 invalid_request_error  CONFLICT
    ├── RequestTooLarge           413 invalid_request_error  PAYLOAD_TOO_LARGE (request_too_large)
    ├── RateLimited               429 rate_limit_error       TOO_MANY_REQUESTS (Retry-After)
    ├── DatabaseUnavailable       503 api_error              SERVICE_UNAVAILABLE (Retry-After)
    └── UpstreamError             the provider's failure, as seen by the client
        ├── UpstreamRejected      the provider's own 4xx status, message and type
        ├── UpstreamUnavailable   502 (transport failure or provider 5xx)
        └── UpstreamTimeout       504

Services raise these; ``api/errors.py`` renders them once, in the OpenAI envelope
``{"error": {message, type, param, code}}`` plus OpenPipe's top-level ``message`` and ``code``.
"""

from __future__ import annotations

from typing import Any, ClassVar

_TRPC_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_SUPPORTED",
    408: "TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE_CONTENT",
    429: "TOO_MANY_REQUESTS",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def trpc_code(status: int) -> str:
    """OpenPipe's tRPC-style ``code`` for an HTTP status."""
    return _TRPC_CODES.get(status, "INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_REQUEST")


class TunepipeError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"

    headers: dict[str, str] | None = None
    """Response headers the error comes with (``Retry-After`` on a 429)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def error_type(self) -> str:
        return self.type

    def envelope(self) -> dict[str, Any]:
        """The JSON body a client receives."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            },
            "message": self.message,
            "code": trpc_code(self.status_code),
        }


class InvalidRequest(TunepipeError):
    status = 400
    type = "invalid_request_error"


class JsonTooDeep(InvalidRequest):
    """A JSON body nested deeper than the configured limit (``TUNEPIPE_MAX_JSON_DEPTH``)."""

    def __init__(self, message: str, *, code: str = "json_too_deep"):
        super().__init__(message, code=code)


class AuthenticationFailed(TunepipeError):
    status = 401
    type = "authentication_error"


class PermissionDenied(TunepipeError):
    status = 403
    type = "permission_error"


class ReadOnlyKey(PermissionDenied):
    def __init__(self) -> None:
        super().__init__(
            "You are trying to call a write operation with a read-only API key. "
            "Use the project's read/write key instead."
        )


class NotFound(TunepipeError):
    status = 404
    type = "not_found_error"


class MethodNotAllowed(TunepipeError):
    status = 405
    type = "invalid_request_error"


class Conflict(TunepipeError):
    status = 409
    type = "invalid_request_error"


class RequestTooLarge(TunepipeError):
    """A request body over the configured limit (``TUNEPIPE_MAX_REQUEST_BYTES``). The connection
    is closed after the answer: what is left of the body is not worth reading."""

    status = 413
    type = "invalid_request_error"
    headers = {"Connection": "close"}

    def __init__(self, message: str, *, code: str = "request_too_large"):
        super().__init__(message, code=code)


class RateLimited(TunepipeError):
    """Over a key's rate limit: ``headers`` say when to come back (``Retry-After``) and the
    limit's state (OpenAI's ``x-ratelimit-*``)."""

    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, headers: dict[str, str], code: str = "rate_limit_exceeded"):
        super().__init__(message, code=code)
        self.headers = headers


class DatabaseUnavailable(TunepipeError):
    """The database cannot be reached and nothing read from it recently stands in for it (a key
    never seen by this process, say): try again shortly."""

    status = 503

    def __init__(self, message: str = "The database is unavailable; try again shortly") -> None:
        super().__init__(message, code="database_unavailable")
        self.headers = {"Retry-After": "5"}


def for_status(status: int, message: str) -> TunepipeError:
    """The error of this hierarchy an HTTP status stands for (a framework's 404, 405, …)."""
    for cls in (
        InvalidRequest,
        AuthenticationFailed,
        PermissionDenied,
        NotFound,
        MethodNotAllowed,
        Conflict,
        RequestTooLarge,
    ):
        if cls.status == status:
            return cls(message)
    return _Status(status, message)


class _Status(TunepipeError):
    """Any other status a framework raised, rendered in the same envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self._status = status

    @property
    def status_code(self) -> int:
        return self._status

    @property
    def error_type(self) -> str:
        return "invalid_request_error" if self._status < 500 else "api_error"


class UpstreamError(TunepipeError):
    """A provider failed; ``upstream_status`` is what the provider said, if it answered."""

    status = 502

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        upstream_body: Any = None,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.upstream_status = upstream_status
        self.upstream_body = upstream_body
        self.retry_after_s = retry_after_s  # the provider's Retry-After, if it sent one

    @property
    def retryable(self) -> bool:
        """Worth another try or another model: throttled (429), failing (5xx), unreachable or
        too slow. Any other 4xx would fail the same way again."""
        return self.upstream_status is None or self.upstream_status == 429 or self.upstream_status >= 500


class UpstreamRejected(UpstreamError):
    """A provider's 4xx: its status, message and type reach the client unchanged."""

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        upstream_body: Any = None,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(
            message,
            upstream_status=upstream_status,
            upstream_body=upstream_body,
            param=param,
            code=code,
            retry_after_s=retry_after_s,
        )
        self._error_type = error_type or "invalid_request_error"

    @property
    def status_code(self) -> int:
        return self.upstream_status or 400

    @property
    def error_type(self) -> str:
        return self._error_type


class UpstreamUnavailable(UpstreamError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
