"""Per-project provider keys and external model providers, managed over REST
(``/provider-keys``, ``/external-providers``) and with the ``tunepipe providers`` CLI, and what
they change on ``/chat/completions``: credentials the upstream sees, routing of
``openpipe:<provider>/<model>``, logged cost, and isolation between projects."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from conftest import KEY_RE, FakeProvider, Gateway

MESSAGES: list[Any] = [{"role": "user", "content": "one two three"}]


def _header(request: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def _slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    """``tunepipe`` with a wide terminal, so tables are not wrapped."""
    return subprocess.run(
        [sys.executable, "-m", "tunepipe", *args],
        env={**gateway.env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Project:
    name: str
    key: str
    read_only_key: str


def _create_project(gateway: Gateway) -> Project:
    name = _slug("proj")
    out = _cli(gateway, "projects", "create", name)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    rw = next(KEY_RE.search(line) for line in lines if "read/write key" in line)
    ro = next(KEY_RE.search(line) for line in lines if "read-only key" in line)
    assert rw is not None and ro is not None and rw.group(0) != ro.group(0)
    return Project(name, rw.group(0), ro.group(0))


@pytest.fixture(scope="module")
def project(gateway: Gateway) -> Project:
    """A second project, made with ``tunepipe projects create``."""
    return _create_project(gateway)


def _completion(gateway: Gateway, model: str, key: str | None = None) -> str | None:
    r = gateway.client(key).chat.completions.create(model=model, messages=MESSAGES)
    return r.choices[0].message.content


# ---------------------------------------------------------------- provider keys


@pytest.mark.parametrize(
    ("provider", "model", "header", "env_value", "value"),
    [
        ("openai", "gpt-4o", "Authorization", "Bearer sk-fake-openai", "Bearer {key}"),
        ("anthropic", "anthropic:claude-3-5-sonnet", "x-api-key", "ak-fake-anthropic", "{key}"),
        ("gemini", "gemini:gemini-2.0-flash", "Authorization", "Bearer gk-fake-gemini", "Bearer {key}"),
    ],
)
def test_provider_key_put_overrides_env_until_deleted(
    gateway: Gateway,
    fake_provider: FakeProvider,
    provider: str,
    model: str,
    header: str,
    env_value: str,
    value: str,
) -> None:
    key = f"pk-{uuid.uuid4().hex}"
    expected = value.format(key=key)
    with gateway.http() as h:
        try:
            r = h.put(f"/provider-keys/{provider}", json={"apiKey": key})
            assert r.status_code == 200 and r.json() == {"provider": provider, "status": "ok"}
            listed = {k["provider"]: k for k in h.get("/provider-keys").json()["data"]}
            assert key not in str(listed) and listed[provider]["apiKey"]  # stored, shown masked

            assert _completion(gateway, model) == "echo: one two three"
            assert _header(fake_provider.last(), header) == expected
        finally:
            r = h.delete(f"/provider-keys/{provider}")
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert provider not in {k["provider"] for k in h.get("/provider-keys").json()["data"]}
    _completion(gateway, model)
    assert _header(fake_provider.last(), header) == env_value


def test_provider_key_base_url_override_moves_the_upstream(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    with gateway.http() as h:
        try:
            r = h.put("/provider-keys/openai", json={"baseUrl": f"{fake_provider.url}/openai/v1"})
            assert r.status_code == 200
            _completion(gateway, "gpt-4o")
            upstream = fake_provider.last()
            assert upstream["path"] == "/openai/v1/chat/completions"
            # Only the URL was overridden: the operator's key never goes to a URL a project
            # chose, so the call goes without one.
            assert _header(upstream, "Authorization") is None
            assert "sk-fake-openai" not in json.dumps(upstream["headers"])
            r = h.put(
                "/provider-keys/openai",
                json={"baseUrl": f"{fake_provider.url}/openai/v1", "apiKey": "pk-own"},
            )
            _completion(gateway, "gpt-4o")
            assert _header(fake_provider.last(), "Authorization") == "Bearer pk-own"
        finally:
            h.delete("/provider-keys/openai")
    _completion(gateway, "gpt-4o")
    assert fake_provider.last()["path"] == "/v1/chat/completions"


def test_provider_key_bad_requests_are_rejected(gateway: Gateway) -> None:
    with gateway.http() as h:
        r = h.put("/provider-keys/cohere", json={"apiKey": "x"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "provider"
        r = h.put("/provider-keys/openai", json={})
        assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"
        r = h.put("/provider-keys/openai", json={"apiKey": "x", "colour": "blue"})
        assert r.status_code == 400 and "colour" in r.json()["message"]
        r = h.delete("/provider-keys/anthropic")
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"


def test_provider_key_cli_set_key_applies_to_that_project(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    other = _create_project(gateway)
    key = f"sk-cli-{uuid.uuid4().hex}"
    out = _cli(gateway, "providers", "set-key", "openai", "--api-key", key, "--project", other.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "openai key stored" in out.stdout

    _completion(gateway, "gpt-4o", other.key)
    assert _header(fake_provider.last(), "Authorization") == f"Bearer {key}"
    _completion(gateway, "gpt-4o")
    assert _header(fake_provider.last(), "Authorization") == "Bearer sk-fake-openai"

    bad = _cli(gateway, "providers", "set-key", "cohere", "--api-key", "x", "--project", other.name)
    assert bad.returncode == 1 and "Unknown provider" in bad.stdout


# ---------------------------------------------------------------- external providers, REST


@pytest.fixture
def external(gateway: Gateway, fake_provider: FakeProvider) -> Iterator[str]:
    """An OpenAI-kind external provider on the fake, with one priced model ``m``."""
    slug = _slug("ext")
    with gateway.http() as h:
        r = h.post(
            "/external-providers",
            json={"slug": slug, "baseUrl": f"{fake_provider.url}/v1", "apiKey": "ext-key-123456789"},
        )
        assert r.status_code == 201, r.text
        r = h.post(
            f"/external-providers/{slug}/models",
            json={"slug": "m", "inputCostPerMillion": 2.0, "outputCostPerMillion": 5.0},
        )
        assert r.status_code == 201, r.text
        try:
            yield slug
        finally:
            h.delete(f"/external-providers/{slug}")


def test_external_provider_routes_to_its_base_url(
    gateway: Gateway, fake_provider: FakeProvider, external: str
) -> None:
    r = gateway.client().chat.completions.create(model=f"openpipe:{external}/m", messages=MESSAGES)
    assert r.choices[0].message.content == "echo: one two three"
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/chat/completions"
    assert upstream["body"]["model"] == "m"
    assert _header(upstream, "Authorization") == "Bearer ext-key-123456789"

    stream = gateway.client().chat.completions.create(
        model=f"openpipe:{external}/m", messages=MESSAGES, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: one two three"


def test_external_provider_prices_give_the_logged_cost(gateway: Gateway, external: str) -> None:
    model = f"openpipe:{external}/m"
    _completion(gateway, model)
    with gateway.http() as h:
        logs = h.get("/logs", params={"model": model}).json()["data"]
    assert len(logs) == 1
    # 3 prompt words at $2/M and 4 completion words ("echo: one two three") at $5/M.
    assert (logs[0]["inputTokens"], logs[0]["outputTokens"]) == (3, 4)
    assert logs[0]["cost"] == pytest.approx((3 * 2.0 + 4 * 5.0) / 1e6)


def test_external_provider_listing_masks_the_key(
    gateway: Gateway, fake_provider: FakeProvider, external: str
) -> None:
    with gateway.http() as h:
        providers = {p["slug"]: p for p in h.get("/external-providers").json()["data"]}
    listed = providers[external]
    assert listed["kind"] == "openai"
    assert listed["baseUrl"] == f"{fake_provider.url}/v1"
    assert "ext-key-123456789" not in str(listed) and listed["apiKey"]
    assert listed["models"] == [
        {"slug": "m", "id": f"openpipe:{external}/m", "inputCostPerMillion": 2.0, "outputCostPerMillion": 5.0}
    ]


def test_external_provider_conflicts_and_unknowns(gateway: Gateway, external: str) -> None:
    with gateway.http() as h:
        r = h.post("/external-providers", json={"slug": external, "baseUrl": "http://127.0.0.1:9/v1"})
        assert r.status_code == 409 and r.json()["code"] == "CONFLICT"
        assert "already exists" in r.json()["message"]
        r = h.post(f"/external-providers/{external}/models", json={"slug": "m"})
        assert r.status_code == 409
        for method, path, body in [
            ("POST", "/external-providers/nope-404/models", {"slug": "m"}),
            ("DELETE", "/external-providers/nope-404/models/m", None),
            ("DELETE", f"/external-providers/{external}/models/not-there", None),
            ("DELETE", "/external-providers/nope-404", None),
        ]:
            r = h.request(method, path, json=body)
            assert r.status_code == 404, f"{method} {path}: {r.text}"
            assert r.json()["code"] == "NOT_FOUND"


def test_external_provider_invalid_fields_are_rejected(gateway: Gateway) -> None:
    with gateway.http() as h:
        for body, param in [
            ({"slug": "bad slug!", "baseUrl": "http://x/v1"}, "slug"),
            ({"slug": _slug("k"), "baseUrl": "http://x/v1", "kind": "cohere"}, "kind"),
            ({"slug": _slug("u"), "baseUrl": "ftp://x/v1"}, "baseUrl"),
        ]:
            r = h.post("/external-providers", json=body)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["param"] == param
        r = h.post("/external-providers", json={"slug": _slug("nourl")})
        assert r.status_code == 400 and "baseUrl" in r.json()["message"]


def test_external_provider_removal_stops_routing(gateway: Gateway, fake_provider: FakeProvider) -> None:
    slug = _slug("gone")
    with gateway.http() as h:
        assert (
            h.post(
                "/external-providers", json={"slug": slug, "baseUrl": f"{fake_provider.url}/v1"}
            ).status_code
            == 201
        )
        assert h.post(f"/external-providers/{slug}/models", json={"slug": "m"}).status_code == 201
        assert _completion(gateway, f"openpipe:{slug}/m") == "echo: one two three"
        assert _header(fake_provider.last(), "Authorization") is None  # registered without a key
        r = h.delete(f"/external-providers/{slug}/models/m")
        assert r.status_code == 200 and r.json() == {"slug": "m", "deleted": True}
        r = h.delete(f"/external-providers/{slug}")
        assert r.status_code == 200 and r.json() == {"slug": slug, "deleted": True}
    with pytest.raises(openai.NotFoundError) as exc:
        _completion(gateway, f"openpipe:{slug}/m")
    assert "does not exist" in exc.value.body["message"]  # type: ignore[index]


def test_external_provider_azure_uses_deployment_url_and_api_key(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    slug = _slug("azure")
    with gateway.http() as h:
        r = h.post(
            "/external-providers",
            json={
                "slug": slug,
                "kind": "azure",
                "baseUrl": fake_provider.url,
                "apiKey": "az-key-0123456789",
                "apiVersion": "2024-06-01",
            },
        )
        assert r.status_code == 201 and r.json()["kind"] == "azure" and r.json()["apiVersion"] == "2024-06-01"
        try:
            r2 = gateway.client().chat.completions.create(
                model=f"openpipe:{slug}/my-deploy", messages=MESSAGES
            )
            assert r2.choices[0].message.content == "echo: one two three"
            upstream = fake_provider.last()
            assert upstream["path"] == "/openai/deployments/my-deploy/chat/completions"
            assert _header(upstream, "api-key") == "az-key-0123456789"
            assert _header(upstream, "Authorization") is None
            assert upstream["body"]["model"] == "my-deploy"
        finally:
            h.delete(f"/external-providers/{slug}")


# ---------------------------------------------------------------- external providers, CLI


def test_external_provider_cli_lifecycle(gateway: Gateway, fake_provider: FakeProvider) -> None:
    other = _create_project(gateway)
    slug = _slug("cli")
    p = ("--project", other.name)

    out = _cli(
        gateway,
        "providers",
        "add",
        slug,
        "--base-url",
        f"{fake_provider.url}/v1",
        "--api-key",
        "cli-ext-key",
        *p,
    )
    assert out.returncode == 0 and f"openpipe:{slug}/<model>" in out.stdout, out.stdout + out.stderr
    out = _cli(gateway, "providers", "add-model", slug, "m", "--input-cost", "1", "--output-cost", "3", *p)
    assert out.returncode == 0 and f"openpipe:{slug}/m registered" in out.stdout
    out = _cli(gateway, "providers", "list", *p)
    assert out.returncode == 0 and slug in out.stdout and f"openpipe:{slug}/m" in out.stdout

    again = _cli(gateway, "providers", "add", slug, "--base-url", f"{fake_provider.url}/v1", *p)
    assert again.returncode == 1 and "already exists" in again.stdout

    model = f"openpipe:{slug}/m"
    assert _completion(gateway, model, other.key) == "echo: one two three"
    assert _header(fake_provider.last(), "Authorization") == "Bearer cli-ext-key"
    with gateway.http(other.key) as h:
        logged = h.get("/logs", params={"model": model}).json()["data"]
        assert logged[0]["cost"] == pytest.approx((3 * 1.0 + 4 * 3.0) / 1e6)

        assert _cli(gateway, "providers", "remove-model", slug, "m", *p).returncode == 0
        assert h.get("/external-providers").json()["data"][0]["models"] == []
        assert _cli(gateway, "providers", "remove", slug, *p).returncode == 0
        assert h.get("/external-providers").json()["data"] == []
    gone = _cli(gateway, "providers", "remove", slug, *p)
    assert gone.returncode == 1 and "No external provider" in gone.stdout
    taken = _cli(gateway, "projects", "create", other.name)
    assert taken.returncode == 1 and "already exists" in taken.stdout


# ---------------------------------------------------------------- isolation


def test_project_isolation_external_providers(
    gateway: Gateway, fake_provider: FakeProvider, project: Project
) -> None:
    mine, theirs = _slug("default-only"), _slug("project-only")
    base = {"baseUrl": f"{fake_provider.url}/v1"}
    with gateway.http() as default, gateway.http(project.key) as other:
        assert default.post("/external-providers", json={"slug": mine, **base}).status_code == 201
        assert other.post("/external-providers", json={"slug": theirs, **base}).status_code == 201
        try:
            assert theirs not in {p["slug"] for p in default.get("/external-providers").json()["data"]}
            assert mine not in {p["slug"] for p in other.get("/external-providers").json()["data"]}
            # The same slug may exist in both projects.
            assert other.post("/external-providers", json={"slug": mine, **base}).status_code == 201
            other.delete(f"/external-providers/{mine}")
            assert default.delete(f"/external-providers/{theirs}").status_code == 404

            assert _completion(gateway, f"openpipe:{theirs}/m", project.key) == "echo: one two three"
            assert _completion(gateway, f"openpipe:{mine}/m") == "echo: one two three"
            with pytest.raises(openai.NotFoundError):
                _completion(gateway, f"openpipe:{theirs}/m")
            with pytest.raises(openai.NotFoundError):
                _completion(gateway, f"openpipe:{mine}/m", project.key)
        finally:
            default.delete(f"/external-providers/{mine}")
            other.delete(f"/external-providers/{theirs}")


def test_project_isolation_provider_keys(
    gateway: Gateway, fake_provider: FakeProvider, project: Project
) -> None:
    key = f"sk-project-{uuid.uuid4().hex}"
    with gateway.http(project.key) as other, gateway.http() as default:
        assert other.put("/provider-keys/openai", json={"apiKey": key}).status_code == 200
        try:
            assert "openai" not in {k["provider"] for k in default.get("/provider-keys").json()["data"]}
            assert default.delete("/provider-keys/openai").status_code == 404
            _completion(gateway, "gpt-4o", project.key)
            assert _header(fake_provider.last(), "Authorization") == f"Bearer {key}"
            _completion(gateway, "gpt-4o")
            assert _header(fake_provider.last(), "Authorization") == "Bearer sk-fake-openai"
        finally:
            other.delete("/provider-keys/openai")


def test_project_isolation_logs_and_keys(gateway: Gateway, project: Project) -> None:
    m = f"m{uuid.uuid4().hex[:8]}"
    gateway.client(project.key).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": m}]
    )
    assert m in str(gateway.latest(project.key)["reqPayload"])
    assert m not in str((gateway.latest() or {}).get("reqPayload"))
    # The new project's read-only key belongs to it and behaves as read-only.
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client(project.read_only_key).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    r = httpx.get(
        f"{gateway.base_url}/external-providers", headers={"Authorization": f"Bearer {project.read_only_key}"}
    )
    assert r.status_code == 403
