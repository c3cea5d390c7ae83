"""``tunepipe network``: the network policy for URLs projects set (docs/security.md), as this
host's settings make it, and whether a URL passes it.

The policy comes from the environment (``TUNEPIPE_UPSTREAM_ALLOW``,
``TUNEPIPE_UPSTREAM_ALLOW_PRIVATE``) of the servers; run these commands with the same
environment to see what they enforce.
"""

from __future__ import annotations

import asyncio
import logging

import typer

from tunepipe.cli.context import JsonOpt, console, print_json
from tunepipe.errors import TunepipeError
from tunepipe.providers.egress import check_url
from tunepipe.settings import Settings

network_app = typer.Typer(
    help="The network policy for upstream URLs that projects set: show it, check a URL.",
    no_args_is_help=True,
)


@network_app.command("show")
def network_show(as_json: JsonOpt = False) -> None:
    """What URLs set through the API may lead to."""
    policy = Settings().network_policy
    networks, hosts = [str(n) for n in policy.networks], list(policy.hosts)
    view = {
        "object": "network_policy",
        "public": True,
        "private": policy.allow_private,
        "networks": networks,
        "hosts": hosts,
    }
    if as_json:
        print_json(view)
        return
    console.print("Public addresses: allowed")
    private = (
        "allowed" if policy.allow_private else "refused (TUNEPIPE_UPSTREAM_ALLOW_PRIVATE=true opens them)"
    )
    console.print(f"Private addresses (loopback, RFC 1918, CGNAT, unique-local IPv6): {private}")
    console.print("Link-local, unspecified, multicast, reserved: refused unless named below")
    console.print(
        f"Networks and addresses allowed (TUNEPIPE_UPSTREAM_ALLOW): {', '.join(networks) or 'none'}"
    )
    console.print(f"Host names allowed (TUNEPIPE_UPSTREAM_ALLOW): {', '.join(hosts) or 'none'}")
    console.print("URLs the operator sets in the environment (OPENAI_BASE_URL, …) are trusted as they are.")


@network_app.command("check")
def network_check(url: str = typer.Argument(help="A base URL, as a project would set it.")) -> None:
    """Whether a project may set this base URL (it is resolved here; nothing is connected to)."""
    logging.getLogger("tunepipe.providers.egress").setLevel(logging.ERROR)  # the answer says it
    try:
        asyncio.run(check_url(url, Settings().network_policy))
    except TunepipeError as exc:
        console.print(f"[red]refused:[/red] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"allowed: {url}", highlight=False)
