"""The guarded session, through aiohttp's real connection path: what a name resolves to when the
call is made is what gets checked (DNS rebinding), IP literals and redirect hops too, and every
failure to connect to a project's upstream reads the same.

Names are resolved by an injected resolver (the way a DNS server under an attacker's control
would answer); the servers are real, on loopback.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from tunepipe.errors import InvalidRequest, UpstreamError, UpstreamRejected, UpstreamUnavailable
from tunepipe.providers.http import Upstreams, is_guarded
from tunepipe.providers.openai_compat import OpenAICompatProvider
from tunepipe.settings import Settings

PUBLIC = "93.184.215.14"  # what the attacker's name answers at registration
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class ScriptedResolver(AbstractResolver):
    """A DNS under someone else's control: ``answers[name]`` is what a lookup returns now."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.answers:
            raise OSError(f"{host} does not resolve")
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.answers[host]
        ]

    async def close(self) -> None:
        return None


@dataclass
class Upstream:
    """A real HTTP server on loopback that records what reaches it."""

    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)


async def _serve(host: str, handler: Any) -> AsyncIterator[tuple[web.AppRunner, int]]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    try:
        yield runner, runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def capture() -> AsyncIterator[Upstream]:
    """Answers any POST with a chat completion and remembers it."""
    upstream = Upstream(0)

    async def handler(request: web.Request) -> web.Response:
        upstream.seen.append({"path": request.path, "headers": dict(request.headers)})
        return web.json_response(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
        )

    async for _, port in _serve("127.0.0.1", handler):
        upstream.port = port
        yield upstream


def _upstreams(resolver: ScriptedResolver, allow: list[str] | None = None) -> Upstreams:
    settings = Settings(upstream_allow=allow or [], upstream_connect_timeout_s=2.0)
    return Upstreams.open(settings, resolver=resolver)


async def _call(upstreams: Upstreams, base_url: str) -> Any:
    provider = OpenAICompatProvider(
        upstreams.session_for(base_url), base_url=base_url, api_key="pk-project", name="upstream"
    )
    return await provider.complete(dict(BODY))


async def test_egress_name_rebound_to_loopback_is_refused_at_connect(capture: Upstream) -> None:
    resolver = ScriptedResolver()
    upstreams = _upstreams(resolver)
    url = f"http://api.rebind.test:{capture.port}/v1"
    try:
        resolver.answers["api.rebind.test"] = [PUBLIC]
        await upstreams.check(url)  # registration: the name is public now; nothing is connected
        assert capture.seen == []

        resolver.answers["api.rebind.test"] = ["127.0.0.1"]  # and loopback at call time
        with pytest.raises(UpstreamUnavailable) as refused:
            await _call(upstreams, url)
        assert (
            str(refused.value) == "Could not reach upstream" and refused.value.code == "upstream_unreachable"
        )
        assert capture.seen == []
        assert resolver.lookups[-1] == "api.rebind.test"  # refused on what it resolved to now
    finally:
        await upstreams.close()

    # The same name and server, with the operator allowing loopback: the call goes through, so
    # the refusal above was the policy's.
    allowed = _upstreams(resolver, ["127.0.0.1/32"])
    try:
        assert (await _call(allowed, url)).data["choices"][0]["message"]["content"] == "ok"
        assert capture.seen[-1]["path"] == "/v1/chat/completions"
    finally:
        await allowed.close()


async def test_egress_name_with_a_private_and_a_public_answer_keeps_the_public(capture: Upstream) -> None:
    resolver = ScriptedResolver()
    resolver.answers["mixed.test"] = ["127.0.0.1", PUBLIC]
    upstreams = _upstreams(resolver)
    try:
        with pytest.raises(InvalidRequest) as exc:
            await upstreams.check(f"http://mixed.test:{capture.port}/v1")
        assert exc.value.code == "upstream_not_allowed"
        # At connect time only the public address is tried (unreachable from here): loopback,
        # where the server is, never gets the request.
        with pytest.raises(UpstreamUnavailable):
            await _call(upstreams, f"http://mixed.test:{capture.port}/v1")
        assert capture.seen == []
    finally:
        await upstreams.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "169.254.169.254"])
async def test_egress_ip_literals_are_refused_without_the_resolver(host: str, capture: Upstream) -> None:
    resolver = ScriptedResolver()
    upstreams = _upstreams(resolver)
    url = f"http://{host}:{capture.port}/v1"
    try:
        with pytest.raises(InvalidRequest) as registration:
            await upstreams.check(url)
        assert registration.value.code == "upstream_not_allowed"
        with pytest.raises(UpstreamUnavailable) as call:
            await _call(upstreams, url)
        assert str(call.value) == "Could not reach upstream"
        assert capture.seen == [] and resolver.lookups == []
    finally:
        await upstreams.close()


async def test_egress_redirect_hops_are_checked(capture: Upstream) -> None:
    """An allowed upstream answering 307 towards loopback (as a literal, or as a name that
    resolves there) does not get the request delivered there."""

    async def redirect(request: web.Request) -> web.Response:
        target = request.query["to"]
        raise web.HTTPTemporaryRedirect(f"http://{target}:{capture.port}/v1/chat/completions")

    resolver = ScriptedResolver()
    resolver.answers["inside.test"] = ["127.0.0.1"]
    async for _, port in _serve("127.0.0.2", redirect):
        upstreams = _upstreams(resolver, ["127.0.0.2/32"])
        try:
            for target in ("127.0.0.1", "inside.test"):
                with pytest.raises(UpstreamUnavailable) as exc:
                    await _call(upstreams, f"http://127.0.0.2:{port}/v1?to={target}&")
                assert str(exc.value) == "Could not reach upstream", target
            assert capture.seen == []
        finally:
            await upstreams.close()


async def test_egress_every_failure_to_connect_reads_the_same(capture: Upstream) -> None:
    resolver = ScriptedResolver()
    resolver.answers["loopback.test"] = ["127.0.0.1"]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    strict = _upstreams(resolver)
    allowed = _upstreams(resolver, ["127.0.0.1/32"])
    try:
        failures: dict[str, UpstreamError] = {}
        cases = {
            "refused by policy (literal)": (strict, f"http://127.0.0.1:{capture.port}/v1"),
            "refused by policy (name)": (strict, f"http://loopback.test:{capture.port}/v1"),
            "metadata address": (strict, "http://169.254.169.254/latest"),
            "name that does not resolve": (strict, "http://nowhere.test/v1"),
            "connection refused": (allowed, f"http://127.0.0.1:{closed_port}/v1"),
        }
        for case, (upstreams, url) in cases.items():
            with pytest.raises(UpstreamError) as exc:
                await _call(upstreams, url)
            failures[case] = exc.value
        assert {(e.status_code, e.message, e.code) for e in failures.values()} == {
            (502, "Could not reach upstream", "upstream_unreachable")
        }, {case: e.message for case, e in failures.items()}
        assert capture.seen == []
    finally:
        await strict.close()
        await allowed.close()


async def test_egress_error_bodies_of_project_upstreams_are_cut_to_their_envelope() -> None:
    replies: list[web.Response] = []

    async def handler(request: web.Request) -> web.Response:
        return replies.pop(0)

    async for _, port in _serve("127.0.0.1", handler):
        upstreams = _upstreams(ScriptedResolver(), ["127.0.0.1/32"])
        url = f"http://127.0.0.1:{port}/v1"
        try:
            assert is_guarded(upstreams.session_for(url))
            secret = "<html>pg_hba.conf: host all all 10.0.0.0/8 trust</html>"
            long = "x" * 5000
            replies[:] = [
                web.Response(status=500, text=secret, content_type="text/html"),
                web.Response(status=404, text=secret, content_type="text/html"),
                web.json_response({"detail": secret}, status=400),
                web.json_response({"error": {"message": long, "type": "invalid_request_error"}}, status=400),
            ]
            errors = []
            for _ in range(4):
                with pytest.raises(UpstreamError) as exc:
                    await _call(upstreams, url)
                errors.append(exc.value)
            assert all("pg_hba" not in e.message and "pg_hba" not in str(e.upstream_body) for e in errors)
            assert errors[0].status_code == 502 and errors[0].message.endswith("upstream returned HTTP 500")
            assert errors[1].status_code == 404 and errors[1].message == "upstream returned HTTP 404"
            assert errors[2].status_code == 400 and errors[2].upstream_body is None
            kept = errors[3]
            assert isinstance(kept, UpstreamRejected) and kept.message == "x" * 200
            assert kept.error_type == "invalid_request_error"
        finally:
            await upstreams.close()


async def test_egress_operator_urls_use_the_trusted_session(capture: Upstream) -> None:
    """A URL set in the environment is the operator's: not subject to the policy, even on
    loopback, and its errors keep their text."""
    operator = f"http://127.0.0.1:{capture.port}/v1"
    settings = Settings(openai_base_url=operator + "/")
    upstreams = Upstreams.open(settings, resolver=ScriptedResolver())
    try:
        await upstreams.check(operator)
        assert not is_guarded(upstreams.session_for(operator))
        assert (await _call(upstreams, operator)).data["choices"]
        # The same server under any other path is a URL a project chose.
        with pytest.raises(InvalidRequest):
            await upstreams.check(f"http://127.0.0.1:{capture.port}/admin?x=")
        assert is_guarded(upstreams.session_for(f"http://127.0.0.1:{capture.port}/admin?x="))
    finally:
        await upstreams.close()


@pytest.mark.parametrize("url", ["http://[::1", "http://host:99999/v1", "http:///v1", "file:///etc/passwd"])
async def test_egress_malformed_urls_are_bad_requests(url: str) -> None:
    upstreams = _upstreams(ScriptedResolver())
    try:
        with pytest.raises(InvalidRequest) as exc:
            await upstreams.check(url)
        assert (exc.value.message, exc.value.param) == ("baseUrl must be an http(s) URL", "baseUrl")
    finally:
        await upstreams.close()
