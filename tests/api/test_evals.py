"""Evaluations on both backends, run by the server's worker against the fake provider: head-to-head
(a clearly better model wins every entry, the shown order is seeded and visible in the judge's
requests, identical outputs tie without a judge, both orders reconcile a biased judge), criteria
and code graders (a failing grader spoils only its rows), output reuse across evals and when
models are added, validation 400s naming the field, and isolation between projects."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from conftest import KEY_RE, FakeProvider, Gateway
from tunepipe.domain.evals import shown_first

PEOPLE = [
    "Maria is 34 and lives in Lisbon.",
    "Meet Tomas, 51, from Porto.",
    "Ana moved to Madrid when she was 27.",
    "Our new colleague Jonas is 45 and comes from Berlin.",
    "Sofia, 29, works in Paris.",
    "Hello from Pedro who is 62 and lives in Rome.",
]


def tag() -> str:
    return uuid.uuid4().hex[:10]


def dataset(gateway: Gateway, texts: list[str], key: str | None = None) -> str:
    """A dataset whose entries (all TEST) ask to extract a person; outputs as the teacher gives."""
    from fakes.provider import extract_person

    with gateway.http(key) as h:
        ds = h.post("/datasets", json={"name": f"eval-{tag()}"}).json()["id"]
        entries = [
            {
                "messages": [
                    {"role": "system", "content": "Extract the person as JSON."},
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": extract_person(text)},
                ],
                "split": "TEST",
            }
            for text in texts
        ]
        r = h.post(f"/datasets/{ds}/entries", json={"entries": entries})
        assert r.status_code == 200 and r.json()["entries_created"] == len(texts), r.text
    return str(ds)


def create(gateway: Gateway, body: dict[str, Any], key: str | None = None) -> str:
    with gateway.http(key) as h:
        r = h.post("/evals", json={"name": f"e-{tag()}", **body})
    assert r.status_code == 201, r.text
    assert r.json()["status"] in ("QUEUED", "RUNNING", "COMPLETE")
    return str(r.json()["id"])


def finished(gateway: Gateway, eval_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with gateway.http() as h:
        while True:
            ev: dict[str, Any] = h.get(f"/evals/{eval_id}").json()
            if ev["status"] in ("COMPLETE", "ERROR", "CANCELLED"):
                return ev
            assert time.monotonic() < deadline, ev
            time.sleep(0.05)


def by_model(ev: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["model"]: m for m in ev["results"]["models"]}


def calls(fake: FakeProvider, model: str, marker: str) -> list[dict[str, Any]]:
    return [r for r in fake.requests() if r["body"].get("model") == model and marker in json.dumps(r["body"])]


def test_head_to_head_a_clearly_better_model_wins_every_entry(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    marker = tag()
    texts = [f"{t} ({marker})" for t in PEOPLE]
    ds = dataset(gateway, texts)
    eval_id = create(
        gateway,
        {
            "dataset_id": ds,
            "type": "head_to_head",
            "models": ["teacher-extract", "gpt-4o-mini"],
            "judge_model": "judge-json",
            "seed": 3,
        },
    )
    ev = finished(gateway, eval_id)
    assert ev["status"] == "COMPLETE" and ev["num_entries"] == len(texts)
    assert ev["progress"]["done"] == len(texts) and ev["progress"]["generated"] == 2 * len(texts)
    models = by_model(ev)
    assert models["teacher-extract"] | {"cost_usd": 0} == {
        "model": "teacher-extract",
        "score": 1.0,
        "judged": len(texts),
        "errors": 0,
        "wins": len(texts),
        "ties": 0,
        "losses": 0,
        "cost_usd": 0,
    }
    assert (models["gpt-4o-mini"]["score"], models["gpt-4o-mini"]["losses"]) == (0.0, len(texts))
    assert models["gpt-4o-mini"]["cost_usd"] > 0  # priced: the fake counts words as tokens
    assert ev["results"]["matrix"] == {
        "teacher-extract": {"gpt-4o-mini": 1.0},
        "gpt-4o-mini": {"teacher-extract": 0.0},
    }
    assert ev["results"]["models"][0]["model"] == "teacher-extract"
    # The two outputs were shown in a seeded random order: both orders occur, and are recorded.
    judge_calls = calls(fake_provider, "judge-json", marker)
    assert len(judge_calls) == len(texts)
    with gateway.http() as h:
        rows = h.get(f"/evals/{eval_id}/rows").json()
    assert rows["total"] == len(texts) and len(rows["data"]) == len(texts)
    # Each entry's order is the seeded one (the same on a rerun), recorded with its verdict and
    # the one the judge was shown.
    for entry in rows["data"]:
        expected = shown_first(3, entry["entry_id"], "teacher-extract", "gpt-4o-mini")
        assert entry["judgements"][0]["details"]["a_first"] is expected
        text = entry["input"]["messages"][1]["content"]
        prompt = next(r["body"]["messages"][1]["content"] for r in judge_calls if text in str(r["body"]))
        first = prompt.split("<response_1>")[1].split("</response_1>")[0]
        assert ('"name"' in first) is expected
    row = rows["data"][0]
    assert row["input"]["messages"][1]["content"] in texts and row["dataset_output"]["content"].startswith(
        "{"
    )
    assert set(row["outputs"]) == {"teacher-extract", "gpt-4o-mini"}
    (judgement,) = row["judgements"]
    assert judgement["model"] == "teacher-extract" and judgement["opponent"] == "gpt-4o-mini"
    assert judgement["score"] == 1.0 and judgement["explanation"].startswith("Valid JSON")
    assert judgement["details"]["a_first"] in (True, False) and len(judgement["details"]["verdicts"]) == 1


def test_identical_outputs_tie_without_a_judge_and_both_orders_reconcile(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    marker = tag()
    ds = dataset(gateway, [f"{t} ({marker})" for t in PEOPLE[:3]])
    same = finished(
        gateway,
        create(
            gateway,
            {
                "dataset_id": ds,
                "type": "head_to_head",
                "models": ["gpt-4o-mini", "gpt-4.1-mini"],
                "judge_model": "judge-json",
            },
        ),
    )
    assert [(m["score"], m["ties"]) for m in same["results"]["models"]] == [(0.5, 3), (0.5, 3)]
    assert calls(fake_provider, "judge-json", marker) == []
    # A judge that always prefers the first response: one order gives random wins, both orders tie.
    biased = finished(
        gateway,
        create(
            gateway,
            {
                "dataset_id": ds,
                "type": "head_to_head",
                "models": ["dataset", "gpt-4o-mini"],
                "judge_model": "judge-first",
                "both_orders": True,
            },
        ),
    )
    assert [m["ties"] for m in biased["results"]["models"]] == [3, 3]
    assert len(calls(fake_provider, "judge-first", marker)) == 6


def test_criteria_eval_scores_each_model_by_its_pass_rate(gateway: Gateway) -> None:
    name = f"isjson-{tag()}"
    with gateway.http() as h:
        assert (
            h.post(
                "/criteria",
                json={"name": name, "instructions": "JSON only", "judge_model": "anthropic:judge-json"},
            ).status_code
            == 201
        )
    ds = dataset(gateway, PEOPLE[:4])
    ev = finished(
        gateway,
        create(
            gateway,
            {"dataset_id": ds, "type": "criteria", "models": ["dataset", "gpt-4o-mini"], "criteria": [name]},
        ),
    )
    models = by_model(ev)
    assert (models["dataset"]["score"], models["gpt-4o-mini"]["score"]) == (1.0, 0.0)
    assert models["dataset"]["judged"] == 4 and ev["criteria"] == [f"{name}@v1"]
    assert ev["results"]["judge_cost_usd"] == 0 and "matrix" not in ev["results"]


def test_code_grader_errors_spoil_only_their_rows(gateway: Gateway) -> None:
    ds = dataset(gateway, PEOPLE[:4])
    source = """
def grader(messages, tools, tool_choice, generated_output, dataset_output):
    text = messages[-1]["content"]
    if "Tomas" in text:
        raise ValueError("no Tomas")
    if "Ana" in text:
        while True:
            pass
    return 1.0 if generated_output["content"] == dataset_output["content"] else 0.25
"""
    ev = finished(
        gateway,
        create(
            gateway,
            {
                "dataset_id": ds,
                "type": "code",
                "models": ["teacher-extract", "gpt-4o-mini"],
                "grader": source,
            },
        ),
        90,
    )
    assert ev["status"] == "COMPLETE"
    models = by_model(ev)
    assert (
        models["teacher-extract"]["score"],
        models["teacher-extract"]["judged"],
        models["teacher-extract"]["errors"],
    ) == (1.0, 2, 2)
    assert (models["gpt-4o-mini"]["score"], models["gpt-4o-mini"]["errors"]) == (0.25, 2)
    with gateway.http() as h:
        rows = h.get(f"/evals/{ev['id']}/rows").json()["data"]
    errors = sorted(j["error_message"] for r in rows for j in r["judgements"] if j["status"] == "error")
    assert errors[:2] == ["ValueError: no Tomas (line 5)"] * 2
    assert all("timed out" in e for e in errors[2:]) and len(errors) == 4
    builtin = finished(
        gateway,
        create(
            gateway,
            {
                "dataset_id": ds,
                "type": "code",
                "models": ["teacher-extract", "gpt-4o-mini"],
                "grader": "exact_match",
            },
        ),
    )
    assert [m["score"] for m in builtin["results"]["models"]] == [1.0, 0.0]


def test_outputs_are_generated_once_and_shared_by_evals(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    marker = tag()
    ds = dataset(gateway, [f"{t} ({marker})" for t in PEOPLE[:3]])
    body = {"dataset_id": ds, "type": "head_to_head", "judge_model": "anthropic:judge-json"}
    first = finished(gateway, create(gateway, {**body, "models": ["teacher-extract", "gpt-4o-mini"]}))
    assert len(calls(fake_provider, "teacher-extract", marker)) == 3
    second = finished(gateway, create(gateway, {**body, "models": ["gpt-4o-mini", "teacher-extract"]}))
    assert (
        len(calls(fake_provider, "teacher-extract", marker)) == 3
        and len(calls(fake_provider, "gpt-4o-mini", marker)) == 3
    )
    assert second["progress"]["reused"] == 6 and second["progress"]["generated"] == 0
    assert by_model(second)["teacher-extract"]["score"] == by_model(first)["teacher-extract"]["score"] == 1.0
    # Adding a model makes only its outputs and the new pairs' judgements.
    judged_before = len(calls(fake_provider, "judge-json", marker))
    with gateway.http() as h:
        r = h.post(f"/evals/{first['id']}/models", json={"models": ["gpt-4.1-nano"]})
        assert r.status_code == 202, r.text
    third = finished(gateway, first["id"])
    assert (
        len(calls(fake_provider, "gpt-4.1-nano", marker)) == 3
        and len(calls(fake_provider, "teacher-extract", marker)) == 3
    )
    assert [m["model"] for m in third["results"]["models"]][0] == "teacher-extract"
    assert by_model(third)["teacher-extract"]["judged"] == 6
    # Only teacher-extract against the new model needs the judge: the two echo models tie as they are.
    assert len(calls(fake_provider, "judge-json", marker)) == judged_before + 3
    assert third["progress"]["generated"] == 3


def test_invalid_eval_bodies_are_400s_naming_the_field(gateway: Gateway) -> None:
    ds = dataset(gateway, PEOPLE[:2])
    base = {
        "name": "bad",
        "dataset_id": ds,
        "type": "head_to_head",
        "models": ["teacher-extract", "gpt-4o-mini"],
        "judge_model": "judge-json",
    }
    cases = [
        ({"dataset_id": "nope"}, "dataset_id"),
        ({"models": ["teacher-extract", "openpipe:no-such-model"]}, "models[1]"),
        ({"models": ["teacher-extract"]}, "models"),
        ({"models": ["gpt-4o-mini", "gpt-4o-mini"]}, "models"),
        ({"judge_model": None}, "judge_model"),
        ({"type": "criteria", "criteria": ["ghost"]}, "criteria[0]"),
        ({"type": "code", "grader": "def grader(:\n  pass"}, "grader"),
        ({"type": "code", "grader": "def other(): return 1"}, "grader"),
        ({"type": "code"}, "grader"),
        ({"type": "nope"}, "type"),
        ({"num_entries": 0}, "num_entries"),
    ]
    with gateway.http() as h:
        for change, param in cases:
            r = h.post("/evals", json={**base, **change})
            assert r.status_code == 400, (change, r.text)
            assert r.json()["error"]["param"] == param, (change, r.json())
        bad_grader = h.post("/evals", json={**base, "type": "code", "grader": "def grader(:\n  pass"}).json()
        assert "line 1" in bad_grader["message"]
        empty = h.post("/datasets", json={"name": "empty"}).json()["id"]
        assert h.post("/evals", json={**base, "dataset_id": empty}).json()["error"]["param"] == "dataset_id"
    with gateway.http(gateway.read_only_key) as h:
        assert h.post("/evals", json=base).status_code == 403


def test_evals_belong_to_their_project(gateway: Gateway) -> None:
    ds = dataset(gateway, PEOPLE[:2])
    eval_id = create(
        gateway, {"dataset_id": ds, "type": "code", "models": ["dataset"], "grader": "exact_match"}
    )
    stranger = KEY_RE.findall(gateway.cli("projects", "create", f"evals-{tag()}").stdout)[0]
    with gateway.http(stranger) as h:
        for path in (f"/evals/{eval_id}", f"/evals/{eval_id}/rows"):
            assert h.get(path).status_code == 404
        assert h.delete(f"/evals/{eval_id}").status_code == 404
        assert h.post(f"/evals/{eval_id}/models", json={"models": ["gpt-4o-mini"]}).status_code == 404
        assert eval_id not in json.dumps(h.get("/evals").json())
        r = h.post(
            "/evals",
            json={
                "name": "x",
                "dataset_id": ds,
                "type": "code",
                "models": ["dataset"],
                "grader": "exact_match",
            },
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "dataset_id"
    ev = finished(gateway, eval_id)
    assert ev["results"]["models"][0]["score"] == 1.0
    with gateway.http() as h:
        assert h.delete(f"/evals/{eval_id}").json()["deleted"] is True
        assert h.get(f"/evals/{eval_id}").status_code == 404


@pytest.mark.parametrize("num", [2])
def test_num_entries_takes_a_seeded_sample(gateway: Gateway, num: int) -> None:
    ds = dataset(gateway, PEOPLE)
    body = {
        "dataset_id": ds,
        "type": "code",
        "models": ["dataset"],
        "grader": "exact_match",
        "num_entries": num,
        "seed": 5,
    }
    a, b = (finished(gateway, create(gateway, body)) for _ in range(2))
    with gateway.http() as h:
        rows_a = [r["entry_id"] for r in h.get(f"/evals/{a['id']}/rows").json()["data"]]
        rows_b = [r["entry_id"] for r in h.get(f"/evals/{b['id']}/rows").json()["data"]]
    assert len(rows_a) == num and rows_a == rows_b and a["num_entries"] == num
