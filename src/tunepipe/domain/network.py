"""Which addresses tunepipe may connect to when a project chose the URL.

A project can name its own upstreams (an external provider's base URL, a provider key's base
URL), and the gateway then connects there from inside the operator's network. Unchecked, that
lets a tenant reach the database, a cloud metadata service or tunepipe itself. The rule here:
**public addresses only**, unless the operator allows more — networks or single addresses, host
names (exact, or ``*.suffix``), or every private range at once (``allow_private``). Unspecified,
multicast, link-local (``169.254.169.254``) and reserved addresses stay out even then, unless a
network entry names them. URLs the operator configured in the environment are not subject to it.

Pure: a host and the addresses it resolved to in, allowed or not out. Resolving, connecting and
refusing are ``providers/egress.py``'s.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # 0.0.0.0 reaches the local host on Linux


class Reach(Enum):
    """What an address is, for the rule."""

    PUBLIC = "public"
    PRIVATE = "private"  # loopback, RFC 1918, CGNAT, unique-local IPv6, documentation ranges
    FORBIDDEN = "forbidden"  # unspecified, multicast, link-local, reserved


def normalize_host(host: str) -> str:
    """A URL's host as rules compare it: lower case, no IPv6 brackets, no trailing dot."""
    return host.strip().strip("[]").rstrip(".").lower()


def parse_address(host: str) -> IPAddress | None:
    """The IP address a host literally is (``[::1]`` and zone ids included), else None."""
    try:
        return ipaddress.ip_address(normalize_host(host).split("%", 1)[0])
    except ValueError:
        return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and reaches (mapped ``::ffff:a.b.c.d``, 6to4,
    NAT64's well-known prefix), else None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def reach(address: IPAddress) -> Reach:
    """Whether ``address`` is public, private or never to be connected to."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return reach(inner)
    if address.is_loopback:  # before reserved: IPv6's ::/8 holds ::1
        return Reach.PRIVATE
    if (
        address.is_unspecified
        or address.is_multicast
        or address.is_link_local
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK)
    ):
        return Reach.FORBIDDEN
    if address.is_private or address in _CGNAT or not address.is_global:
        return Reach.PRIVATE
    return Reach.PUBLIC


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Where URLs a project chose may lead. The default allows public addresses only."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: tuple[str, ...] = ()
    allow_private: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str], *, allow_private: bool = False) -> NetworkPolicy:
        """From the operator's entries: networks (``10.0.0.0/8``), addresses (``127.0.0.1``,
        ``::1``) and host names (``vllm.internal``, ``*.svc.cluster.local``).

        Raises:
            ValueError: an entry is none of these.
        """
        networks: list[IPNetwork] = []
        hosts: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.replace("[", "").replace("]", ""), strict=False))
                continue
            except ValueError:
                pass
            host = normalize_host(entry)
            if not _HOST.match(host):
                raise ValueError(f"{raw!r} is neither a network (10.0.0.0/8), an address nor a host name")
            hosts.append(host)
        return cls(tuple(networks), tuple(hosts), allow_private)

    def allows_host(self, host: str) -> bool:
        """Whether the operator named this host: whatever it resolves to is allowed."""
        name = normalize_host(host)
        for allowed in self.hosts:
            if allowed.startswith("*."):
                if name.endswith(allowed[1:]):
                    return True
            elif name == allowed:
                return True
        return False

    def allows_address(self, address: IPAddress | str) -> bool:
        """Whether connecting to ``address`` is allowed (a host's name aside)."""
        addr = address if not isinstance(address, str) else parse_address(address)
        if addr is None:
            return False
        inner = embedded_ipv4(addr)
        for network in self.networks:
            if addr in network or (inner is not None and inner in network):
                return True
        kind = reach(addr)
        return kind is Reach.PUBLIC or (kind is Reach.PRIVATE and self.allow_private)

    def permitted(self, host: str, addresses: Sequence[str]) -> list[str]:
        """The addresses of ``host`` that may be connected to."""
        if self.allows_host(host):
            return list(addresses)
        return [a for a in addresses if self.allows_address(a)]

    def allows(self, host: str, addresses: Sequence[str]) -> bool:
        """Whether a URL on ``host``, resolved to ``addresses``, may be registered: the host is
        named, or it resolved and every address it resolved to is allowed."""
        if self.allows_host(host):
            return True
        return bool(addresses) and all(self.allows_address(a) for a in addresses)
