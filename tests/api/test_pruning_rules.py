"""Pruning rules through the REST API and the CLI against a real server (SQLite and Postgres)."""

import uuid
from typing import Any

import httpx

from conftest import KEY_RE, Gateway

SYSTEM = "You are a support bot for ACME. Answer politely and in English."


def entry(system: str, user: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": f"{SYSTEM} (the output is never pruned)"},
        ]
    }


def new_dataset(h: httpx.Client, entries: list[dict[str, Any]]) -> str:
    created = h.post("/datasets", json={"name": f"pr-{uuid.uuid4().hex[:8]}"})
    assert created.status_code in (200, 201), created.text
    dataset_id: str = created.json()["id"]
    if entries:
        added = h.post(f"/datasets/{dataset_id}/entries", json={"entries": entries})
        assert added.status_code == 200, added.text
        assert added.json()["entries_created"] == len(entries), added.text
    return dataset_id


def test_pruning_rules_crud_in_creation_order(gateway: Gateway) -> None:
    with gateway.http() as h:
        ds = new_dataset(h, [])
        base = f"/datasets/{ds}/pruning-rules"
        first = h.post(base, json={"textToMatch": SYSTEM})
        assert first.status_code == 201, first.text
        rule = first.json()
        assert rule["textToMatch"] == SYSTEM and rule["datasetId"] == ds and rule["tokensInText"] > 0
        second = h.post(base, json={"textToMatch": "politely"}).json()
        assert [r["id"] for r in h.get(base).json()["data"]] == [rule["id"], second["id"]]

        patched = h.patch(f"{base}/{rule['id']}", json={"textToMatch": "ACME"})
        assert patched.status_code == 200 and patched.json()["textToMatch"] == "ACME"
        assert [r["textToMatch"] for r in h.get(base).json()["data"]] == ["ACME", "politely"]

        assert h.delete(f"{base}/{second['id']}").json()["deleted"] is True
        assert h.delete(f"{base}/{second['id']}").status_code == 404
        assert [r["id"] for r in h.get(base).json()["data"]] == [rule["id"]]


def test_pruning_rules_validation_and_unknown_dataset(gateway: Gateway) -> None:
    with gateway.http() as h:
        ds = new_dataset(h, [])
        empty = h.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": ""})
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "textToMatch"
        missing = h.get("/datasets/no-such-dataset/pruning-rules")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
        assert h.patch(f"/datasets/{ds}/pruning-rules/nope", json={"textToMatch": "x"}).status_code == 404


def test_pruning_rules_writes_need_a_read_write_key(gateway: Gateway) -> None:
    with gateway.http() as h:
        ds = new_dataset(h, [])
    with gateway.http(gateway.read_only_key) as ro:
        assert ro.get(f"/datasets/{ds}/pruning-rules").status_code == 200
        assert ro.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": "x"}).status_code == 403


def test_pruning_rules_of_another_project_are_not_found(gateway: Gateway) -> None:
    created = gateway.cli("projects", "create", f"pr-{uuid.uuid4().hex[:8]}")
    other_key = KEY_RE.findall(created.stdout)[0]
    with gateway.http() as h:
        ds = new_dataset(h, [])
        rule = h.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": "x"}).json()
    with gateway.http(other_key) as other:
        assert other.get(f"/datasets/{ds}/pruning-rules").status_code == 404
        assert other.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": "y"}).status_code == 404
        assert other.delete(f"/datasets/{ds}/pruning-rules/{rule['id']}").status_code == 404
        assert other.get(f"/datasets/{ds}/pruning-rules/report").status_code == 404


def test_pruning_report_counts_matches_and_tokens_saved(gateway: Gateway) -> None:
    with gateway.http() as h:
        ds = new_dataset(
            h,
            [entry(SYSTEM, "Where is my order?"), entry(f"{SYSTEM} VIP.", "Refund"), entry("Short.", "Hi")],
        )
        whole = h.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": SYSTEM}).json()
        vip = h.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": " VIP."}).json()
        report = h.get(f"/datasets/{ds}/pruning-rules/report").json()
    assert (report["entries"], report["entriesChanged"], report["messagesDropped"]) == (3, 2, 2)
    rows = {r["id"]: r for r in report["data"]}
    # The output repeats the system prompt: it is never pruned, so it is not counted.
    assert rows[whole["id"]]["matches"] == 2
    assert rows[whole["id"]]["tokensSaved"] == 2 * whole["tokensInText"]
    assert (rows[vip["id"]]["matches"], rows[vip["id"]]["tokensSaved"]) == (1, vip["tokensInText"])
    assert report["tokensSaved"] == 2 * whole["tokensInText"] + vip["tokensInText"]


def test_pruning_rules_served_under_v1_too(gateway: Gateway) -> None:
    with gateway.http() as h:
        ds = new_dataset(h, [])
    with httpx.Client(
        base_url=f"{gateway.root}/v1", headers={"Authorization": f"Bearer {gateway.key}"}
    ) as v1:
        assert v1.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": "x"}).status_code == 201
        assert len(v1.get(f"/datasets/{ds}/pruning-rules").json()["data"]) == 1


def test_pruning_rules_cli_add_list_report_remove(gateway: Gateway) -> None:
    with gateway.http() as h:
        ds = new_dataset(h, [entry(SYSTEM, "q")])
    added = gateway.cli("pruning-rules", "add", "--dataset", ds, SYSTEM)
    rule_id = added.stdout.split()[2]
    assert "added" in added.stdout
    listed = gateway.cli("pruning-rules", "list", "--dataset", ds)
    assert rule_id in listed.stdout
    report = gateway.cli("pruning-rules", "report", "--dataset", ds)
    assert "1 entries, 1 changed, 1 messages dropped" in " ".join(report.stdout.split())
    assert "removed" in gateway.cli("pruning-rules", "remove", rule_id, "--dataset", ds).stdout
    missing = gateway.cli("pruning-rules", "list", "--dataset", "no-such-dataset", check=False)
    assert missing.returncode == 1 and "No dataset" in missing.stdout
