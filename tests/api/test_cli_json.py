"""CLI output conventions against a live server's database: ``--json`` on every list and show
command prints what the API returns, tables piped to a file keep long ids whole, and the log of a
server whose output is redirected has no carriage-return progress bars."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from conftest import FakeProvider, Gateway, server_log


@pytest.fixture(scope="module")
def provider(gateway: Gateway, fake_provider: FakeProvider) -> str:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        assert (
            h.post(
                "/external-providers", json={"slug": slug, "baseUrl": f"{fake_provider.url}/v1"}
            ).status_code
            == 201
        )
        # Long enough that an 80-column table would cut or wrap it.
        model = "a-very-long-model-name-" + "x" * 90
        assert h.post(f"/external-providers/{slug}/models", json={"slug": model}).status_code == 201
    return slug


def cli_json(gateway: Gateway, *args: str) -> Any:
    out = gateway.cli(*args, "--json", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "command",
    [
        ("models", "list"),
        ("datasets", "list"),
        ("providers", "list"),
        ("base-models", "list"),
        ("jobs", "list"),
        ("projects", "list"),
        ("keys", "list"),
        ("moa", "list"),
        ("criteria", "list"),
        ("evals", "list"),
        ("cache", "stats"),
    ],
)
def test_cli_list_json_is_the_api_list(gateway: Gateway, provider: str, command: tuple[str, ...]) -> None:
    body = cli_json(gateway, *command)
    assert body["object"] == "list" and isinstance(body["data"], list)


def test_cli_json_matches_the_api(gateway: Gateway, provider: str) -> None:
    with gateway.http() as h:
        api_providers = h.get("/external-providers").json()
        api_datasets = h.get("/datasets").json()
        api_routing = h.get("/routing").json()
    cli_providers = cli_json(gateway, "providers", "list")["data"]
    assert {p["slug"]: p for p in cli_providers}[provider] == {p["slug"]: p for p in api_providers["data"]}[
        provider
    ]
    assert [d["id"] for d in cli_json(gateway, "datasets", "list")["data"]] == [
        d["id"] for d in api_datasets["data"]
    ]
    routing = cli_json(gateway, "routing", "show")
    assert routing["object"] == "routing" and routing["fallbacks"] == api_routing["fallbacks"]
    keys = cli_json(gateway, "keys", "list")["data"]
    assert keys and all("…" not in json.dumps(k.get("id")) for k in keys)
    assert not any(gateway.key in json.dumps(k) for k in keys)  # stored hashed: never shown whole


def test_cli_piped_table_keeps_long_ids_whole(gateway: Gateway, provider: str) -> None:
    out = gateway.cli("providers", "list").stdout  # captured: stdout is not a terminal
    long_id = f"openpipe:{provider}/a-very-long-model-name-" + "x" * 90
    assert long_id in out and "…" not in out


def test_cli_serve_log_has_no_carriage_returns(gateway: Gateway) -> None:
    port = int(gateway.root.rsplit(":", 1)[1])
    log = server_log(gateway.env, port).read_bytes()
    assert b"Serving on" in log and b"\r" not in log


def test_cli_criteria_and_pruning_rules_json_match_the_api(gateway: Gateway) -> None:
    name = f"cli-json-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        for instructions in ("Is it polite?", "Is it polite and short?"):
            body = {"name": name, "instructions": instructions, "judge_model": "anthropic:judge-json"}
            assert h.post("/criteria", json=body).status_code == 201
        ds = h.post("/datasets", json={"name": name}).json()["id"]
        entry = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                              {"role": "assistant", "content": "hello"}]}  # fmt: skip
        assert h.post(f"/datasets/{ds}/entries", json={"entries": [entry]}).status_code == 200
        assert h.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": "Be brief."}).status_code == 201
        api = {
            "versions": h.get(f"/criteria/{name}/versions").json(),
            "show": h.get(f"/criteria/{name}@v1").json(),
            "list": h.get("/criteria").json(),
            "rules": h.get(f"/datasets/{ds}/pruning-rules").json(),
            "report": h.get(f"/datasets/{ds}/pruning-rules/report").json(),
            "cache": h.get("/cache").json(),
        }
    versions = cli_json(gateway, "criteria", "versions", name)
    assert versions == api["versions"] and [v["version"] for v in versions["data"]] == [1, 2]
    assert cli_json(gateway, "criteria", "show", f"{name}@v1") == api["show"]
    assert api["show"]["instructions"] == "Is it polite?"
    listed = {c["id"]: c for c in cli_json(gateway, "criteria", "list")["data"]}
    assert listed[f"{name}@v2"] == {c["id"]: c for c in api["list"]["data"]}[f"{name}@v2"]
    rules = cli_json(gateway, "pruning-rules", "list", "--dataset", ds)
    assert rules == api["rules"] and rules["data"][0]["textToMatch"] == "Be brief."
    report = cli_json(gateway, "pruning-rules", "report", "--dataset", ds)
    assert report == api["report"] and report["data"][0]["matches"] == 1
    assert cli_json(gateway, "cache", "stats") == api["cache"]
