"""Datasets through the official ``openpipe`` SDK (``create_dataset``, ``list_datasets``,
``delete_dataset``, ``create_dataset_entries`` and the deprecated ``unstable_*`` calls) and
tunepipe's extra routes over REST, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from openpipe.api_client.core.api_error import ApiError
from openpipe.client import OpenPipe

from conftest import KEY_RE, Gateway


def op(gateway: Gateway, key: str | None = None) -> OpenPipe:
    return OpenPipe(api_key=key or gateway.key, base_url=gateway.base_url)


def name() -> str:
    return f"ds-{uuid.uuid4().hex[:10]}"


def row(i: int | str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ],
        **extra,
    }


def entries(gateway: Gateway, dataset_id: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    with gateway.http() as h:
        while True:
            r = h.get(
                f"/datasets/{dataset_id}/entries", params={"limit": 500, **params, "cursor": cursor or ""}
            )
            assert r.status_code == 200, r.text
            out += r.json()["data"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return out


@pytest.fixture(scope="module")
def other_key(gateway: Gateway) -> Iterator[str]:
    out = gateway.cli("projects", "create", f"dsother-{uuid.uuid4().hex[:8]}").stdout
    keys = KEY_RE.findall(out)
    assert len(keys) == 2, out
    yield keys[0]


def test_datasets_create_list_delete_through_the_sdk(gateway: Gateway) -> None:
    client = op(gateway)
    created = client.create_dataset(name=(n := name()))
    assert created.object == "dataset" and created.name == n
    assert created.dataset_entry_count == 0 and created.fine_tune_count == 0
    assert created.created.endswith("Z")
    listed = {d.id: d for d in client.list_datasets().data}
    assert listed[created.id].name == n
    deleted = client.delete_dataset(dataset_id=created.id)
    assert deleted.deleted is True and deleted.id == created.id
    assert created.id not in {d.id for d in client.list_datasets().data}
    with pytest.raises(ApiError) as info:
        client.delete_dataset(dataset_id=created.id)
    assert info.value.status_code == 404


def test_dataset_entries_partial_success_reports_errors_by_index(gateway: Gateway) -> None:
    client = op(gateway)
    ds = client.create_dataset(name=name())
    bad_last = {"messages": [{"role": "user", "content": "no answer"}]}
    bad_tool = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "content": "y"},
            {"role": "assistant", "content": "z"},
        ]
    }
    result = client.create_dataset_entries(
        dataset_id=ds.id,
        entries=[row(0), bad_last, row(1, split="TEST", metadata={"k": "v"}), bad_tool],  # type: ignore[list-item]
    )
    assert result.object == "dataset.entries.creation"
    assert result.entries_created == 2
    errors = [(e.entry_index, e.message) for e in result.errors.data]
    assert [i for i, _ in errors] == [1, 3]
    assert "assistant" in errors[0][1] and "tool_call_id" in errors[1][1]
    assert result.errors.data[0].object == "dataset.entries.creation.error"
    listed = {d.id: d for d in client.list_datasets().data}
    assert listed[ds.id].dataset_entry_count == 2
    stored = entries(gateway, ds.id)
    assert [e["messages"][-1]["content"] for e in stored] == ["answer 0", "answer 1"]
    assert stored[1]["split"] == "TEST" and stored[1]["metadata"] == {"k": "v"}
    assert {e["provenance"] for e in stored} == {"API"}


def test_dataset_entries_limits_and_metadata_types(gateway: Gateway) -> None:
    client = op(gateway)
    ds = client.create_dataset(name=name())
    with gateway.http() as h:
        assert h.post(f"/datasets/{ds.id}/entries", json={"entries": []}).status_code == 400
        many = h.post(f"/datasets/{ds.id}/entries", json={"entries": [row(i) for i in range(101)]})
        assert many.status_code == 400
        r = h.post(f"/datasets/{ds.id}/entries", json={"entries": [row(0, metadata={"n": 1})]})
        assert r.status_code == 400 and r.json()["message"].startswith("Input validation failed")
        assert h.post("/datasets/nope/entries", json={"entries": [row(0)]}).status_code == 404
    assert (
        client.create_dataset_entries(dataset_id=ds.id, entries=[row(i) for i in range(100)]).entries_created
        == 100
    )  # type: ignore[misc]


def test_dataset_split_reaches_the_ratio_deterministically(gateway: Gateway) -> None:
    client = op(gateway)
    first, second = client.create_dataset(name=name()), client.create_dataset(name=name())
    batch = [row(f"split-{i}") for i in range(200)]
    for ds in (first, second):
        for start in (0, 100):
            client.create_dataset_entries(dataset_id=ds.id, entries=batch[start : start + 100])  # type: ignore[arg-type]
    a = [e["split"] for e in entries(gateway, first.id)]
    b = [e["split"] for e in entries(gateway, second.id)]
    assert a == b
    assert 8 <= a.count("TEST") <= 35
    assert entries(gateway, first.id, split="TEST") == [
        e for e in entries(gateway, first.id) if e["split"] == "TEST"
    ]


def test_dataset_train_ratio_is_a_setting(gateway: Gateway) -> None:
    with gateway.http() as h:
        ds = h.post("/datasets", json={"name": name(), "train_ratio": 0.5}).json()
        assert ds["train_ratio"] == 0.5
        h.post(f"/datasets/{ds['id']}/entries", json={"entries": [row(f"half-{i}") for i in range(100)]})
        renamed = h.patch(f"/datasets/{ds['id']}", json={"name": "renamed", "train_ratio": 0.8}).json()
        assert renamed["name"] == "renamed" and renamed["train_ratio"] == 0.8
        assert h.get(f"/datasets/{ds['id']}").json()["dataset_entry_count"] == 100
    tests = len(entries(gateway, ds["id"], split="TEST"))
    assert 30 <= tests <= 70


def test_dataset_entries_filter_and_paginate(gateway: Gateway) -> None:
    client = op(gateway)
    ds = client.create_dataset(name=name())
    client.create_dataset_entries(
        dataset_id=ds.id, entries=[row(f"page-{i}", split="TRAIN") for i in range(7)]
    )  # type: ignore[misc]
    client.create_dataset_entries(dataset_id=ds.id, entries=[row("needle-XYZ", split="TEST")])  # type: ignore[list-item]
    with gateway.http() as h:
        page = h.get(f"/datasets/{ds.id}/entries", params={"limit": 3}).json()
        assert len(page["data"]) == 3 and page["has_more"]
        bad = h.get(f"/datasets/{ds.id}/entries", params={"cursor": "garbage"})
        assert bad.status_code == 400
        assert h.get(f"/datasets/{ds.id}/entries", params={"provenance": "NOPE"}).status_code == 400
    assert len(entries(gateway, ds.id, limit=3)) == 8
    found = entries(gateway, ds.id, contains="needle-xyz")
    assert [e["split"] for e in found] == ["TEST"]
    assert len(entries(gateway, ds.id, provenance="API")) == 8
    assert entries(gateway, ds.id, provenance="UPLOAD") == []


def test_dataset_entry_get_edit_delete(gateway: Gateway) -> None:
    client = op(gateway)
    ds = client.create_dataset(name=name())
    client.create_dataset_entries(dataset_id=ds.id, entries=[row("edit", split="TRAIN")])  # type: ignore[list-item]
    (entry,) = entries(gateway, ds.id)
    url = f"/datasets/{ds.id}/entries/{entry['id']}"
    with gateway.http() as h:
        assert h.get(url).json() == entry
        new_output = {"role": "assistant", "content": "better"}
        edited = h.patch(url, json={"output": new_output, "split": "TEST"}).json()
        assert edited["output"] == new_output and edited["messages"][-1] == new_output
        assert edited["original_output"] == {"role": "assistant", "content": "answer edit"}
        assert edited["split"] == "TEST"
        again = h.patch(url, json={"output": {"role": "assistant", "content": "best"}}).json()
        assert again["original_output"] == {"role": "assistant", "content": "answer edit"}
        rejected = h.patch(url, json={"rejected_message": edited["original_output"]}).json()
        assert rejected["rejected_message"] == {"role": "assistant", "content": "answer edit"}
        messages = [{"role": "user", "content": "new q"}, {"role": "assistant", "content": "new a"}]
        replaced = h.patch(url, json={"messages": messages}).json()
        assert replaced["messages"] == messages and replaced["input_hash"] != entry["input_hash"]
        invalid = h.patch(url, json={"messages": [{"role": "user", "content": "x"}]})
        assert invalid.status_code == 400
        assert h.patch(url, json={"split": "DEV"}).status_code == 400
        assert h.delete(url).json()["deleted"] is True
        assert h.get(url).status_code == 404
        assert h.delete(url).status_code == 404


def test_dataset_unstable_routes(gateway: Gateway) -> None:
    api = op(gateway).base_client
    created = api.unstable_dataset_create(name=(n := name()))
    listed = {d.id: d for d in api.unstable_dataset_list()}
    assert listed[created.dataset_id].name == n
    legacy = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": "{}"}},
        ],
        "functions": [{"name": "weather", "parameters": {"type": "object"}}],
        "function_call": "auto",
        "judgement": "PASS",
    }
    result = api.unstable_dataset_entry_create(
        dataset_id=created.dataset_id,
        entries=[legacy, {"messages": []}],  # type: ignore[list-item]
    )
    assert result.created_entries == 1
    assert [(e.index, bool(e.message)) for e in result.errors] == [(1, True)]
    (entry,) = entries(gateway, created.dataset_id)
    assert entry["tools"] == [{"type": "function", "function": legacy["functions"][0]}]  # type: ignore[index]
    assert entry["tool_choice"] == "auto"
    assert entry["output"]["tool_calls"][0]["function"] == {"name": "weather", "arguments": "{}"}
    assert api.unstable_dataset_list()[0].dataset_entry_count >= 0
    assert api.unstable_dataset_delete(dataset_id=created.dataset_id).dataset_id == created.dataset_id
    assert created.dataset_id not in {d.id for d in api.unstable_dataset_list()}


def test_datasets_are_scoped_by_project(gateway: Gateway, other_key: str) -> None:
    mine = op(gateway).create_dataset(name=name())
    op(gateway).create_dataset_entries(dataset_id=mine.id, entries=[row("mine")])  # type: ignore[list-item]
    other = op(gateway, other_key)
    assert mine.id not in {d.id for d in other.list_datasets().data}
    for call in (
        lambda: other.delete_dataset(dataset_id=mine.id),
        lambda: other.create_dataset_entries(dataset_id=mine.id, entries=[row("x")]),  # type: ignore[list-item]
    ):
        with pytest.raises(ApiError) as info:
            call()
        assert info.value.status_code == 404
    (entry,) = entries(gateway, mine.id)
    with gateway.http(other_key) as h:
        assert h.get(f"/datasets/{mine.id}").status_code == 404
        assert h.get(f"/datasets/{mine.id}/entries").status_code == 404
        assert h.get(f"/datasets/{mine.id}/entries/{entry['id']}").status_code == 404
        assert (
            h.patch(f"/datasets/{mine.id}/entries/{entry['id']}", json={"split": "TEST"}).status_code == 404
        )
    assert len(entries(gateway, mine.id)) == 1


def test_dataset_writes_need_the_read_write_key(gateway: Gateway) -> None:
    ds = op(gateway).create_dataset(name=name())
    reader = op(gateway, gateway.read_only_key)
    assert ds.id in {d.id for d in reader.list_datasets().data}
    with pytest.raises(ApiError) as info:
        reader.create_dataset(name=name())
    assert info.value.status_code == 403
    with pytest.raises(ApiError) as info:
        reader.create_dataset_entries(dataset_id=ds.id, entries=[row(0)])  # type: ignore[list-item]
    assert info.value.status_code == 403


def test_dataset_export_round_trips(gateway: Gateway) -> None:
    client = op(gateway)
    ds = client.create_dataset(name=name())
    rows = [
        row("rt-0", split="TEST", metadata={"src": "x"}),
        row("rt-1", tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="auto"),
        row("rt-2", rejected_message={"role": "assistant", "content": "worse"}),
    ]
    client.create_dataset_entries(dataset_id=ds.id, entries=rows)  # type: ignore[arg-type]
    with gateway.http() as h:
        body = h.get(f"/datasets/{ds.id}/export").content
        lines = [orjson.loads(line) for line in body.splitlines()]
        assert len(lines) == 3 and all("split" in line for line in lines)
        no_split = h.get(f"/datasets/{ds.id}/export", params={"include_split": "false"}).content
        assert all("split" not in orjson.loads(line) for line in no_split.splitlines())
    copy = client.create_dataset(name=name())
    assert client.create_dataset_entries(dataset_id=copy.id, entries=lines).entries_created == 3
    keep = ("messages", "tools", "tool_choice", "rejected_message", "metadata", "split", "input_hash")

    def essence(dataset_id: str) -> list[dict[str, Any]]:
        return [{k: e[k] for k in keep} for e in entries(gateway, dataset_id)]

    assert essence(copy.id) == essence(ds.id)
