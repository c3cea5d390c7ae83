"""The network policy for URLs a project chose: public addresses only unless the operator allows
more, and the ways an address can hide what it reaches."""

from __future__ import annotations

import ipaddress

import pytest

from tunepipe.domain.network import NetworkPolicy, Reach, embedded_ipv4, parse_address, reach
from tunepipe.settings import Settings

DEFAULT = NetworkPolicy()

# Addresses a tenant must never reach through a default policy, and why.
REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback, all of 127/8"),
    ("::1", "IPv6 loopback"),
    ("10.1.2.3", "RFC 1918"),
    ("172.16.5.4", "RFC 1918"),
    ("192.168.0.10", "RFC 1918"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("169.254.169.254", "cloud metadata (link-local)"),
    ("fe80::1", "IPv6 link-local"),
    ("fd12:3456::1", "IPv6 unique-local"),
    ("0.0.0.0", "unspecified: the local host on Linux"),
    ("0.1.2.3", "this network"),
    ("::", "IPv6 unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "IPv6 multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("2002:7f00:1::", "6to4 of loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of metadata"),
    ("::7f00:1", "IPv4-compatible loopback"),
    ("192.0.2.7", "documentation range"),
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_network_default_policy_refuses_non_public(address: str, why: str) -> None:
    assert not DEFAULT.allows_address(address), why
    assert not DEFAULT.allows("some.host", [address]), why


@pytest.mark.parametrize("address", PUBLIC)
def test_network_default_policy_allows_public(address: str) -> None:
    assert reach(ipaddress.ip_address(address)) is Reach.PUBLIC
    assert DEFAULT.allows_address(address)


def test_network_allow_private_opens_private_ranges_only() -> None:
    policy = NetworkPolicy(allow_private=True)
    for address in ("127.0.0.1", "::1", "10.0.0.1", "192.168.1.1", "100.64.0.1", "fd00::1"):
        assert policy.allows_address(address), address
    # Link-local (the metadata service), unspecified, multicast and reserved stay out.
    for address in ("169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1", "240.0.0.1"):
        assert not policy.allows_address(address), address


def test_network_listed_networks_and_addresses_are_allowed() -> None:
    policy = NetworkPolicy.parse(["127.0.0.1/32", " 10.0.0.0/8 ", "::1", "[fd00::]/8", "169.254.169.254"])
    for address in ("127.0.0.1", "10.200.3.4", "::1", "fd00::5", "::ffff:127.0.0.1", "169.254.169.254"):
        assert policy.allows_address(address), address
    for address in ("127.0.0.2", "192.168.1.1", "fe80::1", "169.254.169.253"):
        assert not policy.allows_address(address), address


def test_network_listed_host_names_allow_whatever_they_resolve_to() -> None:
    policy = NetworkPolicy.parse(["vllm.internal", "*.svc.cluster.local"])
    assert policy.allows("VLLM.internal.", ["10.0.0.7"])
    assert policy.allows("llm.ns.svc.cluster.local", ["10.0.0.8"])
    assert policy.permitted("vllm.internal", ["10.0.0.7", "127.0.0.1"]) == ["10.0.0.7", "127.0.0.1"]
    assert not policy.allows("svc.cluster.local.evil.com", ["10.0.0.9"])
    assert not policy.allows("other.internal", ["10.0.0.7"])


def test_network_a_host_needs_every_address_allowed_to_register() -> None:
    # A name answering with a public and a private address is refused at registration; at
    # connect time only its public address would be used.
    assert not DEFAULT.allows("mixed.example", ["8.8.8.8", "127.0.0.1"])
    assert DEFAULT.permitted("mixed.example", ["8.8.8.8", "127.0.0.1"]) == ["8.8.8.8"]
    assert not DEFAULT.allows("nothing.example", [])


def test_network_literals_are_parsed_as_urls_write_them() -> None:
    assert parse_address("[::1]") == ipaddress.ip_address("::1")
    assert parse_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse_address("LOCALHOST") is None
    assert embedded_ipv4(ipaddress.ip_address("::ffff:10.0.0.1")) == ipaddress.ip_address("10.0.0.1")
    assert embedded_ipv4(ipaddress.ip_address("2606:4700::1")) is None


@pytest.mark.parametrize("entry", ["http://10.0.0.1/", "10.0.0.0/33", "bad host!", "host:8000"])
def test_network_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="neither a network"):
        NetworkPolicy.parse([entry])


def test_network_settings_build_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEPIPE_UPSTREAM_ALLOW", "127.0.0.1/32, vllm.internal")
    monkeypatch.setenv("TUNEPIPE_UPSTREAM_ALLOW_PRIVATE", "true")
    policy = Settings().network_policy
    assert policy.allow_private and policy.hosts == ("vllm.internal",)
    assert policy.networks == (ipaddress.ip_network("127.0.0.1/32"),)
    monkeypatch.setenv("TUNEPIPE_UPSTREAM_ALLOW", "127.0.0.1/40")
    with pytest.raises(ValueError, match="neither a network"):
        Settings()
    monkeypatch.delenv("TUNEPIPE_UPSTREAM_ALLOW")
    monkeypatch.delenv("TUNEPIPE_UPSTREAM_ALLOW_PRIVATE")
    assert Settings().network_policy == NetworkPolicy()
