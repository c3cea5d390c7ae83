"""Roles: a project's keys (read/write, read-only) act inside their project only; an admin key
manages the installation (projects, base models) and reaches no project's data; the shell of the
server host acts as the admin with no key at all.

Base models belong to the installation, so a project's key may list their names but never where
they live on the server, and may neither add nor remove them: ``POST /base-models`` with a
project key is refused before the source is looked at, so it cannot probe the filesystem.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ADMIN_KEY_RE, KEY_RE, FakeProvider, Gateway
from engine.tiny import build_tiny_model


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _refused(r: httpx.Response, code: str) -> None:
    """A 403 in the OpenAI envelope with OpenPipe's top-level fields, naming ``code``."""
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"]["type"] == "permission_error"
    assert body["error"]["code"] == code
    assert body["code"] == "FORBIDDEN" and body["message"] == body["error"]["message"]


def _names(gateway: Gateway) -> dict[str, dict[str, Any]]:
    """The base models as the admin sees them, by name."""
    with gateway.http(gateway.admin_key) as h:
        r = h.get("/base-models")
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()["data"]}


def _project_keys(gateway: Gateway) -> list[str]:
    return [gateway.key, gateway.read_only_key]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("admin-model"))


@pytest.fixture
def registered(gateway: Gateway, model_dir: Path) -> Iterator[str]:
    """A base model the admin key registered; removed afterwards."""
    name = f"adm-{_tag()}"
    with gateway.http(gateway.admin_key) as h:
        r = h.post("/base-models", json={"source": str(model_dir), "name": name})
        assert r.status_code == 201, r.text
        yield name
        h.delete(f"/base-models/{name}")


@pytest.fixture
def other_project(gateway: Gateway) -> str:
    name = f"adm-other-{_tag()}"
    with gateway.http(gateway.admin_key) as h:
        assert h.post("/projects", json={"name": name}).status_code == 201
    return name


def test_admin_role_admin_key_adds_lists_and_removes_base_models(gateway: Gateway, model_dir: Path) -> None:
    name = f"adm-{_tag()}"
    with gateway.http(gateway.admin_key) as h:
        r = h.post("/base-models", json={"source": str(model_dir), "name": name})
        assert r.status_code == 201, r.text
        assert r.json()["id"] == f"local:{name}" and r.json()["path"] == str(model_dir.resolve())
        listed = _names(gateway)[name]
        assert listed["source"] == str(model_dir) and listed["path"] == str(model_dir.resolve())
        assert h.delete(f"/base-models/{name}").json() == {"id": f"local:{name}", "deleted": True}
    with gateway.http() as h:
        assert name not in {m["name"] for m in h.get("/base-models").json()["data"]}


def test_admin_role_project_keys_cannot_add_or_remove_base_models(
    gateway: Gateway, model_dir: Path, registered: str
) -> None:
    before = _names(gateway)
    for key in _project_keys(gateway):
        with gateway.http(key) as h:
            _refused(
                h.post("/base-models", json={"source": str(model_dir), "name": f"p-{_tag()}"}),
                "admin_required",
            )
            _refused(h.delete(f"/base-models/{registered}"), "admin_required")
    assert _names(gateway) == before


def test_admin_role_project_keys_see_names_but_no_server_paths(
    gateway: Gateway, model_dir: Path, registered: str
) -> None:
    secrets = {str(gateway.home), str(gateway.home.resolve()), str(model_dir), str(model_dir.resolve())}
    for m in _names(gateway).values():
        secrets |= {m["path"], m["source"]}
    for key in _project_keys(gateway):
        with gateway.http(key) as h:
            r = h.get("/base-models")
            catalog = h.get("/models")
        assert r.status_code == 200 and catalog.status_code == 200
        listed = {m["name"]: m for m in r.json()["data"]}
        assert listed[registered] == {
            "id": f"local:{registered}",
            "name": registered,
            "kind": "dir",
            "base": None,
            "createdAt": listed[registered]["createdAt"],
        }
        for text in (r.text, catalog.text):
            leaked = [s for s in secrets if s in text or json.dumps(s)[1:-1] in text]
            assert not leaked, leaked


def test_admin_role_source_probe_by_project_key_is_refused_unseen(gateway: Gateway) -> None:
    # An existing directory and a missing one get the same answer: the refusal comes first.
    missing = f"/no-such-dir-{_tag()}"
    for key in _project_keys(gateway):
        with gateway.http(key) as h:
            probe, absent = (h.post("/base-models", json={"source": s}) for s in ("/etc", missing))
        _refused(probe, "admin_required")
        assert probe.json() == absent.json()
    assert "etc" not in _names(gateway)


def test_admin_role_source_probe_by_admin_is_a_plain_400(gateway: Gateway) -> None:
    with gateway.http(gateway.admin_key) as h:
        r = h.post("/base-models", json={"source": "/etc"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "source"
    # It says what is wrong with the source and lists nothing that is in it.
    entries = [e for e in os.listdir("/etc") if len(e) >= 6]
    assert entries and not [e for e in entries if e in error["message"]]
    assert "etc" not in _names(gateway)


def test_admin_role_project_keys_cannot_manage_projects(gateway: Gateway, other_project: str) -> None:
    wanted = f"adm-new-{_tag()}"
    for key in _project_keys(gateway):
        with gateway.http(key) as h:
            _refused(h.get("/projects"), "admin_required")
            _refused(h.post("/projects", json={"name": wanted}), "admin_required")
            _refused(h.delete(f"/projects/{other_project}"), "admin_required")
    with gateway.http(gateway.admin_key) as h:
        names = {p["name"] for p in h.get("/projects").json()["data"]}
    assert other_project in names and wanted not in names


def test_admin_role_admin_key_creates_lists_and_deletes_projects(gateway: Gateway) -> None:
    name = f"adm-made-{_tag()}"
    with gateway.http(gateway.admin_key) as h:
        r = h.post("/projects", json={"name": name})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["object"] == "project" and made["name"] == name
        read_write, read_only = made["api_keys"]["read_write"], made["api_keys"]["read_only"]
        assert KEY_RE.fullmatch(read_write) and KEY_RE.fullmatch(read_only)
        assert name in {p["name"] for p in h.get("/projects").json()["data"]}
        assert h.post("/projects", json={"name": name}).status_code == 409
        assert h.post("/projects", json={"name": ""}).status_code == 400
    with gateway.http(read_write) as p:
        keys = p.get("/keys").json()["data"]
        assert {k["read_only"] for k in keys} == {False, True} and len(keys) == 2
    with gateway.http(gateway.admin_key) as h:
        gone = h.delete(f"/projects/{name}")
        assert gone.status_code == 200 and gone.json()["deleted"] is True
        assert name not in {p["name"] for p in h.get("/projects").json()["data"]}
        assert h.delete(f"/projects/{name}").status_code == 404
        r = h.delete("/projects/default")
        assert r.status_code == 400 and r.json()["error"]["param"] == "name"
    for key in (read_write, read_only):  # its keys went with it
        with gateway.http(key) as p:
            assert p.get("/keys").status_code == 401


def test_admin_role_admin_key_is_no_project_key(gateway: Gateway, fake_provider: FakeProvider) -> None:
    fake_provider.clear()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with gateway.http(gateway.admin_key) as h:
        _refused(h.post("/chat/completions", json=body), "project_key_required")
        _refused(h.get("/models"), "project_key_required")
        _refused(h.get("/keys"), "project_key_required")
        _refused(h.get("/datasets"), "project_key_required")
        _refused(h.put("/provider-keys/openai", json={"apiKey": "sk-x"}), "project_key_required")
    assert fake_provider.requests() == []


@pytest.mark.slow  # four CLI runs
def test_admin_role_cli_acts_as_admin_without_a_key(gateway: Gateway, model_dir: Path) -> None:
    env = {k: v for k, v in gateway.env.items() if k != "TUNEPIPE_API_KEY"}
    cli = dataclasses.replace(gateway, env=env, extra={}).cli
    name, project = f"adm-cli-{_tag()}", f"adm-cli-{_tag()}"
    cli("base-models", "add", str(model_dir), "--name", name)
    listed = {m["name"]: m for m in json.loads(cli("base-models", "list", "--json").stdout)["data"]}
    assert listed[name]["path"] == str(model_dir.resolve())
    with gateway.http(gateway.admin_key) as h:
        assert h.delete(f"/base-models/{name}").status_code == 200

    project_key = KEY_RE.findall(cli("projects", "create", project).stdout)[0]
    with gateway.http(gateway.admin_key) as h:
        assert project in {p["name"] for p in h.get("/projects").json()["data"]}
    cli("projects", "delete", project, "--yes")
    with gateway.http(gateway.admin_key) as h:
        assert project not in {p["name"] for p in h.get("/projects").json()["data"]}
    with gateway.http(project_key) as h:
        assert h.get("/keys").status_code == 401


def test_admin_role_revoked_admin_key_is_refused(gateway: Gateway) -> None:
    made = ADMIN_KEY_RE.search(gateway.cli("admin", "create-key", "--name", "short-lived").stdout)
    assert made is not None
    key = made.group(0)
    with gateway.http(key) as h:
        assert h.get("/projects").status_code == 200
    gateway.cli("admin", "revoke-key", key[:10])  # by its prefix, as `admin list-keys` shows it
    with gateway.http(key) as h:  # the server hears of it at its next change-feed poll
        deadline = time.monotonic() + 5
        while (r := h.get("/projects")).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.status_code == 401
