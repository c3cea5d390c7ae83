"""Revoking API keys: ``DELETE /keys/{id}`` with a read/write key of the project, and
``tunepipe keys revoke`` on the server host; a revoked key is refused from its next call, a
read-only key cannot revoke, another project's key finds nothing."""

from __future__ import annotations

import time
import uuid

import httpx

from conftest import KEY_RE, Gateway


def _project(gateway: Gateway) -> tuple[str, str, str]:
    name = f"keys-{uuid.uuid4().hex[:8]}"
    rw, ro = KEY_RE.findall(gateway.cli("projects", "create", name).stdout)[:2]
    return name, rw, ro


def _new_key(gateway: Gateway, project: str) -> str:
    return KEY_RE.findall(gateway.cli("keys", "create", "--project", project, "--name", "spare").stdout)[0]


def _status(gateway: Gateway, key: str) -> int:
    with gateway.http(key) as h:
        return h.get("/logs", params={"limit": 1}).status_code


def _refused_soon(gateway: Gateway, key: str) -> bool:
    deadline = time.monotonic() + 5
    while _status(gateway, key) != 401:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_keys_revoke_through_the_api(gateway: Gateway) -> None:
    name, rw, ro = _project(gateway)
    _, other_rw, _ = _project(gateway)
    spare = _new_key(gateway, name)
    assert _status(gateway, spare) == 200
    with gateway.http(rw) as h:
        listed = h.get("/keys").json()["data"]
    key_id = next(k["id"] for k in listed if spare.startswith(k["prefix"]) and k["name"] == "spare")

    with gateway.http(ro) as h:
        refused = h.delete(f"/keys/{key_id}")
    assert refused.status_code == 403
    with gateway.http(other_rw) as h:
        assert h.delete(f"/keys/{key_id}").status_code == 404
    assert _status(gateway, spare) == 200  # neither touched it

    with gateway.http(rw) as h:
        done = h.delete(f"/keys/{key_id}")
        assert done.status_code == 200 and done.json() == {"id": key_id, "object": "api_key", "deleted": True}
        assert key_id not in {k["id"] for k in h.get("/keys").json()["data"]}
        assert h.delete(f"/keys/{key_id}").status_code == 404
    assert _status(gateway, spare) == 401
    assert _status(gateway, rw) == 200


def test_keys_revoke_from_the_cli_reaches_the_running_server(gateway: Gateway) -> None:
    name, rw, _ = _project(gateway)
    spare = _new_key(gateway, name)
    assert _status(gateway, spare) == 200  # now in the server's key cache
    prefix = spare[:10]  # as `tunepipe keys list` shows it
    out = gateway.cli("keys", "revoke", prefix, "--project", name)
    assert "revoked" in out.stdout
    assert _refused_soon(gateway, spare)  # the change feed tells the server
    assert _status(gateway, rw) == 200
    gone = gateway.cli("keys", "revoke", prefix, check=False)
    assert gone.returncode == 1


def test_keys_revoke_needs_a_key_of_the_project(gateway: Gateway) -> None:
    r = httpx.delete(f"{gateway.base_url}/keys/{uuid.uuid4()}", headers={"Authorization": "Bearer opk_nope"})
    assert r.status_code == 401 and r.json()["error"]["type"]
