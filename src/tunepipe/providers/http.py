"""The shared upstream HTTP client and the mapping of transport and status failures.

Rules every provider follows: a provider's 4xx keeps its status and message
(:class:`UpstreamRejected`); a 5xx or a broken connection is a 502 and a timeout a 504, with the
provider's own message kept in the text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from tunepipe.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable


def new_session(*, connect_timeout_s: float, read_timeout_s: float) -> aiohttp.ClientSession:
    """One pooled session for the whole process, built in the app's lifespan."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True)


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """(message, type, param, code) from an OpenAI- or Anthropic-style error body."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            message = err.get("message")
            return (
                message if isinstance(message, str) else None,
                err.get("type") if isinstance(err.get("type"), str) else None,
                err.get("param") if isinstance(err.get("param"), str) else None,
                str(err["code"]) if err.get("code") is not None else None,
            )
        if isinstance(err, str):
            return err, None, None, None
    return None, None, None, None


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a provider asked to wait: ``retry-after-ms`` (OpenAI's), else ``Retry-After`` in
    seconds (an HTTP date is not worth the parsing here: it is treated as absent)."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def error_from_response(
    status: int, raw: bytes, provider: str, headers: Mapping[str, str] | None = None
) -> UpstreamError:
    """The error to raise for a non-2xx provider answer."""
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = raw.decode("utf-8", "replace")[:2000]
    message, err_type, param, code = _error_fields(body)
    if message is None:
        message = body if isinstance(body, str) and body else f"{provider} returned HTTP {status}"
    if 400 <= status < 500:
        return UpstreamRejected(
            message,
            upstream_status=status,
            upstream_body=body,
            error_type=err_type,
            param=param,
            code=code,
            retry_after_s=retry_after(headers),
        )
    return UpstreamUnavailable(
        f"{provider} failed with HTTP {status}: {message}",
        upstream_status=status,
        upstream_body=body,
        retry_after_s=retry_after(headers),
    )


def transport_error(exc: BaseException, provider: str) -> UpstreamError:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"{provider} did not answer in time")
    return UpstreamUnavailable(f"Could not reach {provider}: {exc.__class__.__name__}: {exc}")


async def post_json(
    session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str], provider: str
) -> bytes:
    """POST and return the body of a 2xx answer; raise the mapped error otherwise."""
    try:
        async with session.post(url, data=data, headers=headers) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise error_from_response(resp.status, raw, provider, resp.headers)
            return raw
    except UpstreamError:
        raise
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(exc, provider) from exc


async def open_response(
    session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str], provider: str
) -> aiohttp.ClientResponse:
    """POST for a stream: return a 2xx response whose body is still unread (caller releases)."""
    try:
        resp = await session.post(url, data=data, headers=headers)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(exc, provider) from exc
    if resp.status >= 300:
        try:
            raw = await resp.read()
        finally:
            resp.release()
        raise error_from_response(resp.status, raw, provider, resp.headers)
    return resp


async def guarded(
    events: AsyncIterator[dict[str, Any]], provider: str, response: aiohttp.ClientResponse
) -> AsyncIterator[dict[str, Any]]:
    """Map transport failures in the middle of a stream and always release the response."""
    try:
        async for event in events:
            yield event
    except UpstreamError:
        raise
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(exc, provider) from exc
    finally:
        response.release()
