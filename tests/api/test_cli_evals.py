"""``tunepipe criteria`` and ``tunepipe evals`` against a real server on both backends: criteria
versions, an alignment set uploaded, judged by the server's worker and measured, a head-to-head
eval followed to the end and read back, and a failed create exiting 1 with its message."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

from conftest import Gateway, people_entries

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def tag() -> str:
    return uuid.uuid4().hex[:10]


def cli(gateway: Gateway, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``tunepipe …`` with the server's environment, wide enough that tables never wrap."""
    done = gateway.cli(*args, check=False, wide=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def line_with(output: str, text: str) -> str:
    return next(line for line in output.splitlines() if text in line)


def cells(output: str, first: str) -> list[str]:
    """The cells of the first table row whose first cell is ``first``."""
    for line in output.splitlines():
        found = [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]
        if found and found[0] == first:
            return found
    raise AssertionError(f"no row {first!r} in:\n{output}")


def numbers(line: str) -> list[str]:
    return re.findall(r"\d+\.\d+|\b\d+\b", line)


def test_cli_criteria_create_list_show_versions_and_delete(gateway: Gateway, tmp_path: Path) -> None:
    name = f"json-{tag()}"
    created = cli(gateway, "criteria", "create", name, "--judge-model", "anthropic:judge-json",
                  "--instructions", "Pass JSON objects.", "--description", "Structured answers")  # fmt: skip
    assert f"{name}@v1" in created.stdout
    instructions = tmp_path / "instructions.txt"
    instructions.write_text("Anything\ngoes.")
    second = cli(gateway, "criteria", "create", name, "--judge-model", "judge-first",
                 "--instructions-file", str(instructions))  # fmt: skip
    assert f"{name}@v2" in second.stdout
    listed = cli(gateway, "criteria", "list").stdout
    assert f"{name}@v2" in listed and f"{name}@v1" not in listed
    shown = cli(gateway, "criteria", "show", f"{name}@v1").stdout
    for text in (f"{name}@v1", "anthropic:judge-json", "Structured answers", "Pass JSON objects.", "output"):
        assert text in shown
    assert "Anything\ngoes." in cli(gateway, "criteria", "show", name).stdout
    versions = cli(gateway, "criteria", "versions", name).stdout
    assert versions.index(f"{name}@v1") < versions.index(f"{name}@v2")
    # The offline judge, on an output given inline.
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps([{"role": "user", "content": "Give me JSON."}]))
    judged = cli(gateway, "criteria", "judge", f"{name}@v1", "--messages-file", str(messages),
                 "--output", '{"ok": true}').stdout  # fmt: skip
    assert "score 1.00" in judged and "judge-json" in judged
    neither = cli(gateway, "criteria", "create", name, "--judge-model", "judge-first", check=False)
    assert neither.returncode == 2 and "--instructions" in neither.stdout
    assert "1 version(s)" in cli(gateway, "criteria", "delete", f"{name}@v2").stdout
    assert "1 version(s)" in cli(gateway, "criteria", "delete", name).stdout
    missing = cli(gateway, "criteria", "show", name, check=False)
    assert missing.returncode == 1 and name in missing.stdout


def alignment_rows() -> list[dict[str, Any]]:
    """Two JSON outputs the humans passed, a text one they failed, and a text one they passed
    (the judge-json judge fails it: the one disagreement)."""

    def row(output: str, judgement: str) -> dict[str, Any]:
        return {
            "messages": [{"role": "user", "content": f"Extract: {output[:12]}"}],
            "output": {"role": "assistant", "content": output},
            "judgement": judgement,
        }

    return [
        row('{"name": "Ana"}', "PASS"),
        row('{"name": "Rui"}', "PASS"),
        row("I cannot do that.", "FAIL"),
        row("Name: Maria, polite text", "PASS"),
    ]


def test_cli_criteria_alignment_upload_align_label_stats_and_compare(
    gateway: Gateway, tmp_path: Path
) -> None:
    name = f"align-{tag()}"
    cli(
        gateway, "criteria", "create", name, "--judge-model", "anthropic:judge-json", "--instructions", "JSON"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(alignment_rows()[0]) + "\n{not json\n")
    refused = cli(gateway, "criteria", "align-upload", name, str(bad), check=False)
    assert refused.returncode == 1
    assert "invalid JSON" in refused.stdout and "nothing added" in refused.stdout
    good = tmp_path / "rows.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in alignment_rows()))
    assert "4 row(s) added" in cli(gateway, "criteria", "align-upload", name, str(good)).stdout

    aligned = cli(gateway, "criteria", "align", name)
    assert "Align job" in aligned.stdout and f"{name}@v1" in aligned.stdout
    # accuracy, precision, recall, F1, kappa; then compared, unlabelled, errors, rows
    assert numbers(line_with(aligned.stdout, "$"))[:9] == [
        "0.75",
        "0.50",
        "1.00",
        "0.67",
        "0.50",
        "4",
        "0",
        "0",
        "4",
    ]

    stats = cli(gateway, "criteria", "stats", name).stdout
    assert numbers(line_with(stats, "$"))[:5] == ["0.75", "0.50", "1.00", "0.67", "0.50"]
    assert cells(stats, "human FAIL") == ["human FAIL", "1", "0"]
    assert cells(stats, "human PASS") == ["human PASS", "1", "2"]
    disagreeing = line_with(stats, "Name: Maria")
    assert "PASS" in disagreeing and "FAIL (0.00)" in disagreeing
    row_id = UUID_RE.search(disagreeing).group(0)  # type: ignore[union-attr]

    # The humans change their mind: the judge now agrees on every row, no new job needed.
    assert "FAIL" in cli(gateway, "criteria", "label", name, row_id, "fail").stdout
    stats = cli(gateway, "criteria", "stats", name).stdout
    assert numbers(line_with(stats, "$"))[:5] == ["1.00", "1.00", "1.00", "1.00", "1.00"]
    assert "No disagreements." in stats

    # A second version whose judge passes everything, measured on the same rows.
    cli(
        gateway, "criteria", "create", name, "--judge-model", "anthropic:judge-first", "--instructions", "All"
    )
    cli(gateway, "criteria", "align", name)
    compared = cli(gateway, "criteria", "compare", name).stdout
    # version, judge, accuracy, precision, recall, F1, kappa, compared, errors
    assert cells(compared, f"{name}@v1")[2:9] == ["1.00", "1.00", "1.00", "1.00", "1.00", "4", "0"]
    assert cells(compared, f"{name}@v2")[2:9] == ["0.50", "-", "0.00", "-", "0.00", "4", "0"]

    # --json prints what the API returns for the same thing.
    with gateway.http() as h:
        api_compare = h.get(f"/criteria/{name}/alignment/compare").json()
        api_stats = h.get(f"/criteria/{name}@v2/alignment/stats").json()
    assert json.loads(cli(gateway, "criteria", "compare", name, "--json").stdout) == api_compare
    stats_json = json.loads(cli(gateway, "criteria", "stats", f"{name}@v2", "--json").stdout)
    assert stats_json == api_stats and stats_json["accuracy"] == 0.5 and len(stats_json["disagreements"]) == 2


def extraction_dataset(gateway: Gateway) -> str:
    people = [("Maria", 34, "Lisbon"), ("João", 51, "Porto"), ("Ana", 27, "Braga"), ("Rui", 45, "Faro")]
    with gateway.http() as h:
        ds = h.post("/datasets", json={"name": f"people-{tag()}"}).json()["id"]
        r = h.post(f"/datasets/{ds}/entries", json={"entries": people_entries(people)})
        assert r.status_code == 200 and r.json()["entries_created"] == 4, r.text
    return str(ds)


def test_cli_evals_head_to_head_waits_shows_rows_and_deletes(gateway: Gateway) -> None:
    ds = extraction_dataset(gateway)
    name = f"h2h-{tag()}"
    created = cli(gateway, "evals", "create", "--name", name, "--dataset", ds, "--type", "head_to_head",
                  "--model", "teacher-extract", "--model", "gpt-4o-mini",
                  "--judge-model", "anthropic:judge-json")  # fmt: skip
    eval_id = UUID_RE.search(line_with(created.stdout, name)).group(0)  # type: ignore[union-attr]
    # Model, score, wins, ties, losses, judged, errors
    assert cells(created.stdout, "teacher-extract")[1:7] == ["1.00", "4", "0", "0", "4", "0"]
    assert cells(created.stdout, "gpt-4o-mini")[1:7] == ["0.00", "0", "0", "4", "4", "0"]
    assert "4/4" in created.stderr  # the progress bar, on stderr

    shown = cli(gateway, "evals", "show", eval_id).stdout
    assert "COMPLETE" in line_with(shown, "status") and "4/4" in line_with(shown, "progress")
    assert "anthropic:judge-json" in shown
    assert cells(shown, "teacher-extract")[1:3] == ["1.00", "4"]
    matrix = shown.split("win rate against")[1]  # the model-vs-model matrix
    assert cells(matrix, "teacher-extract")[1:] == ["", "1.00"]
    assert cells(matrix, "gpt-4o-mini")[1:] == ["0.00", ""]

    rows = cli(gateway, "evals", "rows", eval_id, "--limit", "2").stdout
    maria = line_with(rows, "Maria")
    assert '{"name":"Maria","age":34' in maria.replace(" ", "")
    assert "echo: Maria is 34" in maria and "teacher-extract vs gpt-4o-mini: win" in maria
    assert "entries 1-2 of 4" in rows

    with gateway.http() as h:
        api_eval = h.get(f"/evals/{eval_id}").json()
        api_rows = h.get(f"/evals/{eval_id}/rows", params={"limit": 2}).json()
        api_list = h.get("/evals").json()
    shown_json = json.loads(cli(gateway, "evals", "show", eval_id, "--json").stdout)
    assert shown_json == api_eval and shown_json["status"] == "COMPLETE"
    assert json.loads(cli(gateway, "evals", "rows", eval_id, "--limit", "2", "--json").stdout) == api_rows
    listed_json = json.loads(cli(gateway, "evals", "list", "--dataset", ds, "--json").stdout)
    assert listed_json["data"] == [e for e in api_list["data"] if e["dataset_id"] == ds]

    listed = cli(gateway, "evals", "list", "--dataset", ds).stdout
    assert eval_id in line_with(listed, name) and "COMPLETE" in line_with(listed, name)
    added = cli(gateway, "evals", "add-models", eval_id, "--model", "dataset").stdout
    assert "teacher-extract, gpt-4o-mini, dataset" in added
    assert f"Deleted eval {eval_id}" in cli(gateway, "evals", "delete", eval_id).stdout
    gone = cli(gateway, "evals", "show", eval_id, check=False)
    assert gone.returncode == 1 and "No eval" in gone.stdout


def test_cli_evals_create_on_an_unknown_dataset_exits_1(gateway: Gateway) -> None:
    failed = cli(gateway, "evals", "create", "--name", "x", "--dataset", "nope", "--type", "head_to_head",
                 "--model", "gpt-4o-mini", "--model", "teacher-extract",
                 "--judge-model", "anthropic:judge-json", check=False)  # fmt: skip
    assert failed.returncode == 1
    assert "no dataset 'nope'" in failed.stdout
    assert "Traceback" not in failed.stderr
