"""JSONL upload (``POST /datasets/{id}/upload`` and ``tunepipe datasets upload``) and the CLI's
create/list/export, on both backends: every spec D form, all-or-nothing with line numbers, and
export → re-upload giving identical entries."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import orjson

from conftest import Gateway

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def row(i: int | str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ],
        **extra,
    }


def entries(gateway: Gateway, dataset_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    with gateway.http() as h:
        while True:
            r = h.get(f"/datasets/{dataset_id}/entries", params={"limit": 500, "cursor": cursor or ""})
            assert r.status_code == 200, r.text
            out += r.json()["data"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return out


def jsonl(*rows: Any) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def new_dataset(gateway: Gateway) -> str:
    with gateway.http() as h:
        r = h.post("/datasets", json={"name": f"up-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])


def upload(gateway: Gateway, dataset_id: str, body: bytes) -> Any:
    with gateway.http() as h:
        return h.post(
            f"/datasets/{dataset_id}/upload", files={"file": ("data.jsonl", body, "application/jsonl")}
        )


def comparable(e: dict[str, Any]) -> dict[str, Any]:
    keys = ("messages", "tools", "tool_choice", "response_format", "rejected_message", "metadata", "split")
    return {k: e[k] for k in keys}


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]

VARIED = [
    row(1, split="TEST", metadata={"prompt_id": "a"}),
    row(2),
    {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
                ],
            },
        ],
        "tools": TOOLS,
        "tool_choice": "auto",
        "split": "TRAIN",
    },
    row(4, rejected_message={"role": "assistant", "content": "worse"}, temperature=0.3),
    {
        "messages": [{"role": "user", "content": "json please"}, {"role": "assistant", "content": "{}"}],
        "response_format": {"type": "json_object"},
    },
]


def test_upload_rest_creates_every_entry_in_file_order(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    r = upload(gateway, ds, jsonl(*VARIED))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "object": "dataset.upload",
        "entries_created": 5,
        "lines": 5,
        "error_count": 0,
        "errors": [],
    }
    got = entries(gateway, ds)
    assert [e["messages"] for e in got] == [v["messages"] for v in VARIED]
    assert {e["provenance"] for e in got} == {"UPLOAD"}
    assert got[0]["split"] == "TEST" and got[0]["metadata"] == {"prompt_id": "a"}
    assert got[1]["split"] in ("TRAIN", "TEST")
    assert got[2]["tools"] == TOOLS and got[2]["tool_choice"] == "auto"
    assert got[3]["rejected_message"] == {"role": "assistant", "content": "worse"}
    assert got[4]["response_format"] == {"type": "json_object"}


def test_upload_legacy_forms_are_converted(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    legacy_io = {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "output": {"role": "assistant", "content": "hello"},
        "split": "TEST",
    }
    legacy_functions = {
        "input": {
            "messages": [{"role": "user", "content": "weather?"}],
            "functions": [{"name": "lookup", "parameters": {"type": "object"}}],
            "function_call": "auto",
        },
        "output": {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "lookup", "arguments": "{}"},
        },
    }
    r = upload(gateway, ds, jsonl(legacy_io, legacy_functions))
    assert r.status_code == 200, r.text
    first, second = entries(gateway, ds)
    assert first["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert first["split"] == "TEST"
    assert second["tools"] == [{"type": "function", "function": legacy_functions["input"]["functions"][0]}]
    assert second["tool_choice"] == "auto"
    assert second["output"]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": "{}"}
    assert "function_call" not in second["output"]


def test_upload_errors_have_line_numbers_and_create_nothing(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    body = (
        jsonl(row(1))
        + b"\n"  # line 2: empty
        + b"{not json\n"  # line 3
        + jsonl(
            {"messages": [{"role": "user", "content": "no answer"}]},  # line 4
            row(5, metadata={"n": 1}),  # line 5
            row(6, split="VALID"),  # line 6
            {},  # line 7
        )
        + jsonl(row(8))
    )
    r = upload(gateway, ds, body)
    assert r.status_code == 400, r.text
    out = r.json()
    assert out["error"]["type"] == "invalid_request_error"
    assert out["entries_created"] == 0 and out["error_count"] == 6 and out["lines"] == 8
    assert [e["line"] for e in out["errors"]] == [2, 3, 4, 5, 6, 7]
    lines = {e["line"]: e["message"] for e in out["errors"]}
    assert lines[2] == "empty row"
    assert lines[3].startswith("invalid JSON")
    assert "assistant" in lines[4]
    assert "metadata" in lines[5]
    assert "split" in lines[6]
    assert lines[7] == "empty row"
    assert "line 2" in out["error"]["message"]
    assert entries(gateway, ds) == []


def test_upload_trailing_newline_is_fine_but_a_blank_last_line_is_not(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    assert upload(gateway, ds, jsonl(row(1)).rstrip(b"\n")).json()["entries_created"] == 1
    assert upload(gateway, ds, jsonl(row(2)) + b"\r\n").json()["errors"] == [
        {"line": 2, "message": "empty row"}
    ]
    assert upload(gateway, ds, b"").json()["errors"] == [{"line": 1, "message": "the file has no entries"}]
    assert len(entries(gateway, ds)) == 1


def test_upload_error_list_is_capped_but_counted(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    out = upload(gateway, ds, b"{}\n" * 250).json()
    assert out["error_count"] == 250 and len(out["errors"]) == 100
    assert out["errors"][-1]["line"] == 100


def test_upload_needs_a_write_key_and_a_dataset(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    with gateway.http(gateway.read_only_key) as h:
        r = h.post(f"/datasets/{ds}/upload", files={"file": ("a.jsonl", jsonl(row(1)))})
    assert r.status_code == 403, r.text
    assert upload(gateway, "no-such-dataset", jsonl(row(1))).status_code == 404
    with gateway.http() as h:
        assert h.post(f"/datasets/{ds}/upload").status_code == 400


def test_export_then_upload_gives_identical_entries(gateway: Gateway) -> None:
    source = new_dataset(gateway)
    assert upload(gateway, source, jsonl(*VARIED)).status_code == 200
    with gateway.http() as h:
        exported = h.get(f"/datasets/{source}/export").content
    copy = new_dataset(gateway)
    r = upload(gateway, copy, exported)
    assert r.status_code == 200, r.text
    assert [comparable(e) for e in entries(gateway, copy)] == [
        comparable(e) for e in entries(gateway, source)
    ]


def test_cli_create_upload_list_export_round_trip(gateway: Gateway, tmp_path: Path) -> None:
    created = gateway.cli("datasets", "create", f"cli-{uuid.uuid4().hex[:8]}", "--train-ratio", "0.5")
    match = UUID_RE.search(created.stdout)
    assert match, created.stdout
    ds = match.group(0)
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(*VARIED, *(row(i) for i in range(10, 300))))
    up = gateway.cli("datasets", "upload", ds, str(src))
    assert "295 entries imported" in up.stdout, up.stdout + up.stderr
    # Progress is on stderr; not a terminal here, so it is drawn once, without cursor codes.
    assert "Checking" in up.stderr and "Importing" in up.stderr
    assert "\x1b[" not in up.stderr and up.stderr.count("Checking") == 1
    listed = gateway.cli("datasets", "list").stdout
    assert ds in listed and "295" in listed

    out = tmp_path / "out.jsonl"
    ex = gateway.cli("datasets", "export", ds, "-o", str(out))
    assert "295 entries written" in ex.stdout and "295/295" in ex.stderr, ex.stdout + ex.stderr
    assert out.read_bytes().count(b"\n") == 295
    piped = gateway.cli("datasets", "export", ds, "--no-include-split")
    assert piped.stdout.count("\n") == 295 and '"split"' not in piped.stdout

    copy = UUID_RE.search(gateway.cli("datasets", "create", "copy").stdout)
    assert copy
    assert "295 entries imported" in gateway.cli("datasets", "upload", copy.group(0), str(out)).stdout
    assert [comparable(e) for e in entries(gateway, copy.group(0))] == [
        comparable(e) for e in entries(gateway, ds)
    ]


def test_cli_upload_reports_errors_and_imports_nothing(gateway: Gateway, tmp_path: Path) -> None:
    ds = new_dataset(gateway)
    src = tmp_path / "bad.jsonl"
    src.write_bytes(jsonl(row(1)) + b"\n" + jsonl(row(3, split="x")))
    r = gateway.cli("datasets", "upload", ds, str(src), check=False)
    assert r.returncode == 1
    assert "empty row" in r.stdout and "nothing imported" in r.stdout
    assert "Checking" in r.stderr and "Importing" not in r.stderr
    assert re.search(r"│\s*2\s*│\s*empty row", r.stdout), r.stdout
    assert entries(gateway, ds) == []
    missing = gateway.cli("datasets", "upload", "nope", str(src), check=False)
    assert missing.returncode == 1 and "No dataset" in missing.stdout
