"""The network policy enforced where connections are made, for URLs a project chose.

:class:`~tunepipe.domain.network.NetworkPolicy` says which addresses are allowed; this module
makes the guarded HTTP session obey it on every connection, and checks a URL when a project
registers it:

- a host name is resolved by :class:`PolicyResolver`, which hands aiohttp only the allowed
  addresses, so what is connected to is what was checked (a name that resolved to a public
  address when it was registered and to ``127.0.0.1`` now is refused now: DNS rebinding);
- aiohttp never resolves an IP literal, so :func:`literal_guard`, a client middleware, checks
  those, on every hop of a redirect too.

A refusal is an :class:`UpstreamNotAllowed` connection error, worded the same whatever the
target (a tenant learns nothing of what answers where); the server's log says why.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from tunepipe.domain.network import NetworkPolicy, normalize_host, parse_address
from tunepipe.errors import InvalidRequest

log = logging.getLogger(__name__)

NOT_ALLOWED_CODE = "upstream_not_allowed"
NOT_ALLOWED = (
    "baseUrl is not an address this server may call: it must resolve to public addresses, or to "
    "ones the operator allows (TUNEPIPE_UPSTREAM_ALLOW)"
)


class UpstreamNotAllowed(aiohttp.ClientConnectionError):
    """A connection the network policy refused (raised before any connection is made)."""


def _log_refusal(host: str, why: str) -> None:
    """The operator's side of a refusal: which host, and why (the tenant's side says neither)."""
    log.warning("refused a project's upstream %s: %s (TUNEPIPE_UPSTREAM_ALLOW)", host, why)


def _refuse(host: str, why: str) -> UpstreamNotAllowed:
    _log_refusal(host, why)
    return UpstreamNotAllowed("upstream not allowed")


class PolicyResolver(AbstractResolver):
    """Resolves with ``inner`` and keeps only the addresses ``policy`` allows."""

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = set(self._policy.permitted(host, [r["host"] for r in results]))
        kept = [r for r in results if r["host"] in allowed]
        if not kept:
            raise _refuse(host, "it resolves to no address the network policy allows")
        return kept

    async def close(self) -> None:
        await self._inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """The connector of the session for URLs a project chose (so that the error mapping of
    :mod:`tunepipe.providers.http` can tell its failures apart)."""

    def __init__(self, policy: NetworkPolicy, resolver: AbstractResolver | None = None) -> None:
        super().__init__(
            limit=0,
            ttl_dns_cache=300,
            keepalive_timeout=30,
            resolver=PolicyResolver(policy, resolver),
        )


class LiteralGuard:
    """Client middleware: refuse an IP-literal host the policy does not allow (names are the
    resolver's). Runs for every request of the session, each hop of a redirect included."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        host = request.url.raw_host or ""
        # What aiohttp takes for an address it connects to without asking the resolver.
        if ":" in host or host.replace(".", "").isdigit():
            address = parse_address(host)
            if address is None or not self._policy.allows_address(address):
                raise _refuse(host, "the network policy does not allow this address")
        return await handler(request)


async def check_url(
    url: str,
    policy: NetworkPolicy,
    *,
    param: str = "baseUrl",
    resolver: AbstractResolver | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Refuse ``url`` unless it is http(s) and its host resolves to allowed addresses only.

    Nothing is connected to. A name that does not resolve is refused like one that resolves to
    a private address, so the answer says nothing of the operator's network.

    Raises:
        InvalidRequest: with code ``upstream_not_allowed`` (or a plain one for a URL that is
            not http(s)).
    """
    try:
        parts = urlsplit(url)
        hostname = parts.hostname if parts.scheme in ("http", "https") and parts.port != 0 else None
    except ValueError:  # a malformed authority ("http://[::1", a port out of range)
        hostname = None
    if not hostname:
        raise InvalidRequest(f"{param} must be an http(s) URL", param=param)
    host = normalize_host(hostname)
    address = parse_address(host)
    if address is not None:
        addresses = [str(address)]
    elif policy.allows_host(host):
        return
    else:
        owned = resolver is None
        active = resolver if resolver is not None else aiohttp.ThreadedResolver()
        try:
            async with asyncio.timeout(timeout_s):
                addresses = [r["host"] for r in await active.resolve(host, 0, socket.AF_UNSPEC)]
        except (OSError, TimeoutError):
            addresses = []
        finally:
            if owned:
                await active.close()
    if not policy.allows(host, addresses):
        _log_refusal(host, f"not registered: it resolves to {addresses or 'nothing'}")
        raise InvalidRequest(NOT_ALLOWED.replace("baseUrl", param, 1), param=param, code=NOT_ALLOWED_CODE)
