"""The shared upstream HTTP clients and the mapping of transport and status failures.

Rules every provider follows: a provider's 4xx keeps its status and message
(:class:`UpstreamRejected`); a 5xx or a broken connection is a 502 and a timeout a 504, with the
provider's own message kept in the text.

Two sessions (:class:`Upstreams`): the URLs the operator configured go out as they are; every URL
a project chose goes through a session guarded by the network policy
(:mod:`tunepipe.providers.egress`), and what such an upstream says back is told with care: a
failure to connect reads the same whatever the cause (refused, timed out, not allowed), and an
error body is kept only as far as it is an error envelope, cut short; anything else it sent
(an internal service's page, say) is neither shown to the caller nor logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver

from tunepipe.domain.network import NetworkPolicy
from tunepipe.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from tunepipe.providers.egress import GuardedConnector, LiteralGuard, check_url
from tunepipe.settings import Settings

UNREACHABLE_CODE = "upstream_unreachable"
_GUARDED_MESSAGE_MAX = 200


def new_session(
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    policy: NetworkPolicy | None = None,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """A pooled session, built in the app's lifespan; with ``policy``, guarded by it on every
    connection (``resolver``: what resolves names before the policy filters them)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
    if policy is None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True)
    return aiohttp.ClientSession(
        connector=GuardedConnector(policy, resolver),
        timeout=timeout,
        auto_decompress=True,
        middlewares=(LiteralGuard(policy),),
    )


def is_guarded(session: aiohttp.ClientSession) -> bool:
    """Whether ``session`` is the one for URLs a project chose."""
    return isinstance(session.connector, GuardedConnector)


@dataclass(frozen=True, slots=True)
class Upstreams:
    """The process's outbound sessions: ``trusted`` for the URLs the operator configured in the
    environment, ``guarded`` for every other (a project chose it)."""

    trusted: aiohttp.ClientSession
    guarded: aiohttp.ClientSession
    policy: NetworkPolicy
    operator_urls: frozenset[str]
    connect_timeout_s: float = 10.0
    resolver: AbstractResolver | None = None

    @classmethod
    def open(cls, settings: Settings, *, resolver: AbstractResolver | None = None) -> Upstreams:
        """Both sessions for ``settings`` (in a running event loop)."""
        connect, read = settings.upstream_connect_timeout_s, settings.upstream_timeout_s
        policy = settings.network_policy
        urls = (settings.openai_base_url, settings.anthropic_base_url, settings.gemini_base_url)
        return cls(
            trusted=new_session(connect_timeout_s=connect, read_timeout_s=read),
            guarded=new_session(
                connect_timeout_s=connect, read_timeout_s=read, policy=policy, resolver=resolver
            ),
            policy=policy,
            operator_urls=frozenset(u.rstrip("/") for u in urls),
            connect_timeout_s=connect,
            resolver=resolver,
        )

    def trusts(self, base_url: str) -> bool:
        """Whether ``base_url`` is one the operator configured (compared as Router compares)."""
        return base_url.rstrip("/") in self.operator_urls

    def session_for(self, base_url: str) -> aiohttp.ClientSession:
        return self.trusted if self.trusts(base_url) else self.guarded

    async def check(self, url: str, *, param: str = "baseUrl") -> None:
        """Refuse a URL a project is setting unless the policy allows where it leads (raises
        :class:`~tunepipe.errors.InvalidRequest`); nothing is connected to."""
        if self.trusts(url):
            return
        await check_url(
            url, self.policy, param=param, resolver=self.resolver, timeout_s=self.connect_timeout_s
        )

    async def close(self) -> None:
        await self.trusted.close()
        await self.guarded.close()


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


def _envelope_only(body: Any) -> dict[str, Any] | None:
    """What may be kept of an error body from a URL a project chose: an error envelope's
    string fields, each cut short; None for anything else."""
    if not isinstance(body, dict) or "error" not in body:
        return None
    message, err_type, param, code = _error_fields(body)
    if message is None:
        return None
    fields = {"message": message, "type": err_type, "param": param, "code": code}
    return {"error": {k: v[:_GUARDED_MESSAGE_MAX] if v else v for k, v in fields.items()}}


def error_from_response(
    status: int,
    raw: bytes,
    provider: str,
    headers: Mapping[str, str] | None = None,
    *,
    guarded: bool = False,
) -> UpstreamError:
    """The error to raise for a non-2xx provider answer; ``guarded``: the upstream is one a
    project chose, and only an error envelope of what it sent is kept (cut short)."""
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None if guarded else raw.decode("utf-8", "replace")[:2000]
    if guarded:
        body = _envelope_only(body)
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


def transport_error(exc: BaseException, provider: str, *, guarded: bool = False) -> UpstreamError:
    """The error for a failed connection or read; ``guarded``: the upstream is one a project
    chose, and every failure to connect reads the same (refused, timed out, unresolvable, or
    refused by the network policy), so that the answer maps nothing of the network."""
    if guarded and not isinstance(exc, aiohttp.SocketTimeoutError):
        return UpstreamUnavailable(f"Could not reach {provider}", code=UNREACHABLE_CODE)
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
                raise error_from_response(
                    resp.status, raw, provider, resp.headers, guarded=is_guarded(session)
                )
            return raw
    except UpstreamError:
        raise
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(exc, provider, guarded=is_guarded(session)) from exc


async def open_response(
    session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str], provider: str
) -> aiohttp.ClientResponse:
    """POST for a stream: return a 2xx response whose body is still unread (caller releases)."""
    try:
        resp = await session.post(url, data=data, headers=headers)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(exc, provider, guarded=is_guarded(session)) from exc
    if resp.status >= 300:
        try:
            raw = await resp.read()
        finally:
            resp.release()
        raise error_from_response(resp.status, raw, provider, resp.headers, guarded=is_guarded(session))
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
