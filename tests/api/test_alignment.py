"""Criterion alignment sets on both backends: a JSONL upload (line-numbered errors, all or
nothing), labelling, sampling rows from a dataset with a model's outputs, the ``align`` job, and
agreement statistics checked against a hand-computed example, compared across versions."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from conftest import KEY_RE, FakeProvider, Gateway


def tag() -> str:
    return uuid.uuid4().hex[:10]


def row(output: str, judgement: str | None, text: str = "Give me the record.") -> dict[str, Any]:
    line: dict[str, Any] = {
        "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": output}],
    }
    if judgement is not None:
        line["judgement"] = judgement
    return line


# (output, human) -> what a judge passing JSON objects says: the confusion matrix with FAIL positive.
ROWS = [
    ('{"id": 1}', "PASS"),  # judge PASS: true pass
    ('{"id": 2}', "FAIL"),  # judge PASS: missed fail
    ("no record", "FAIL"),  # judge FAIL: true fail
    ("nothing here", "FAIL"),  # judge FAIL: true fail
    ("a fine answer", "PASS"),  # judge FAIL: false fail
    ('{"id": 3}', "PASS"),  # judge PASS: true pass
    ('{"id": 4}', None),  # not labelled
]


def upload(h: httpx.Client, name: str, lines: list[str]) -> httpx.Response:
    data = ("\n".join(lines) + "\n").encode()
    return h.post(f"/criteria/{name}/alignment/upload", files={"file": ("set.jsonl", data)})


def run(h: httpx.Client, criterion: str, **body: Any) -> dict[str, Any]:
    r = h.post(f"/criteria/{criterion}/alignment/run", json=body)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    while True:
        job: dict[str, Any] = h.get(f"/jobs/{r.json()['id']}").json()
        if job["status"] in ("DONE", "ERROR", "CANCELLED"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_alignment_statistics_match_a_hand_computed_example(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    name = f"align-{tag()}"
    with gateway.http() as h:
        assert (
            h.post(
                "/criteria",
                json={
                    "name": name,
                    "instructions": "JSON records pass.",
                    "judge_model": "anthropic:judge-json",
                },
            ).status_code
            == 201
        )
        bad = upload(
            h,
            name,
            [
                json.dumps(row(*ROWS[0])),
                json.dumps(row(*ROWS[1])),
                "{not json",
                json.dumps(row(*ROWS[2])),
                json.dumps(row("x", "MAYBE")),
            ],
        )
        assert bad.status_code == 400
        assert [e["line"] for e in bad.json()["errors"]] == [3, 5] and bad.json()["rows_added"] == 0
        assert "line 3" in bad.json()["message"]
        assert h.get(f"/criteria/{name}/alignment").json()["data"] == []
        good = upload(h, name, [json.dumps(row(o, j)) for o, j in ROWS])
        assert good.status_code == 201 and good.json()["rows_added"] == 7
        job = run(h, name)
        assert job["status"] == "DONE" and job["result"]["compared"] == 6
        stats = h.get(f"/criteria/{name}/alignment/stats").json()
        assert {
            k: stats[k]
            for k in (
                "rows",
                "compared",
                "unlabelled",
                "errors",
                "true_fail",
                "false_fail",
                "missed_fail",
                "true_pass",
            )
        } == {
            "rows": 7,
            "compared": 6,
            "unlabelled": 1,
            "errors": 0,
            "true_fail": 2,
            "false_fail": 1,
            "missed_fail": 1,
            "true_pass": 2,
        }
        # accuracy 4/6; precision 2/(2+1); recall 2/(2+1); F1 2/3; chance agreement .5*.5+.5*.5 = .5
        assert stats["accuracy"] == pytest.approx(4 / 6)
        assert stats["precision"] == pytest.approx(2 / 3) and stats["recall"] == pytest.approx(2 / 3)
        assert stats["f1"] == pytest.approx(2 / 3) and stats["kappa"] == pytest.approx((4 / 6 - 0.5) / 0.5)
        assert sorted(d["output"]["content"] for d in stats["disagreements"]) == [
            "a fine answer",
            '{"id": 2}',
        ]
        # A second version that passes everything agrees only by chance.
        assert (
            h.post(
                "/criteria",
                json={"name": name, "instructions": "Anything.", "judge_model": "anthropic:judge-first"},
            ).status_code
            == 201
        )
        run(h, f"{name}@v2")
        compared = h.get(f"/criteria/{name}/alignment/compare").json()["data"]
        assert [(v["version"], v["accuracy"], v["kappa"]) for v in compared] == [
            (1, pytest.approx(4 / 6), pytest.approx(1 / 3)),
            (2, 0.5, 0.0),
        ]
        assert compared[1]["precision"] is None and compared[1]["recall"] == 0
        # Labelling the last row brings it into the statistics; a rerun judges nothing new.
        unlabelled = next(
            r for r in h.get(f"/criteria/{name}/alignment").json()["data"] if r["judgement"] is None
        )
        assert unlabelled["judge"]["score"] == 1.0
        assert (
            h.patch(f"/criteria/{name}/alignment/{unlabelled['id']}", json={"judgement": "PASS"}).status_code
            == 200
        )
        assert h.patch(f"/criteria/{name}/alignment/nope", json={"judgement": "PASS"}).status_code == 404
        assert (
            h.patch(f"/criteria/{name}/alignment/{unlabelled['id']}", json={"judgement": "MAYBE"}).status_code
            == 400
        )
        judge_calls = len(
            [
                r
                for r in fake_provider.requests()
                if name in json.dumps(r["body"]) or "JSON records pass." in json.dumps(r["body"])
            ]
        )
        again = run(h, f"{name}@v1")
        assert again["result"]["compared"] == 7 and again["result"]["true_pass"] == 3
        assert (
            len([r for r in fake_provider.requests() if "JSON records pass." in json.dumps(r["body"])])
            == judge_calls
        )


def test_alignment_rows_sampled_from_a_dataset_with_a_models_outputs(gateway: Gateway) -> None:
    name = f"sampled-{tag()}"
    with gateway.http() as h:
        assert (
            h.post(
                "/criteria", json={"name": name, "instructions": "x", "judge_model": "judge-polite"}
            ).status_code
            == 201
        )
        ds = h.post("/datasets", json={"name": "align-src"}).json()["id"]
        entries = [row(f"answer {i}", None, text=f"question {i}") for i in range(5)]
        assert h.post(f"/datasets/{ds}/entries", json={"entries": entries}).status_code == 200
        r = h.post(
            f"/criteria/{name}/alignment/sample",
            json={"dataset_id": ds, "count": 3, "output_source": "gpt-4o-mini", "seed": 1},
        )
        assert r.status_code == 201 and r.json()["rows_added"] == 3
        r = h.post(f"/criteria/{name}/alignment/sample", json={"dataset_id": ds, "count": 2})
        assert r.status_code == 201
        rows = h.get(f"/criteria/{name}/alignment").json()["data"]
        model_rows = [x for x in rows if x["source"] == "model"]
        assert len(model_rows) == 3 and all(
            x["output"]["content"] == "echo: " + x["messages"][-1]["content"] for x in model_rows
        )
        assert all(x["output"]["content"].startswith("answer") for x in rows if x["source"] == "dataset")
        assert all(x["dataset_entry_id"] for x in rows)
        for body, param in (
            ({"dataset_id": "nope", "count": 2}, None),
            ({"dataset_id": ds, "count": 0}, "count"),
        ):
            r = h.post(f"/criteria/{name}/alignment/sample", json=body)
            assert r.status_code in (400, 404), r.text
            if param:
                assert r.json()["error"]["param"] == param
        r = h.post(f"/criteria/{name}/alignment", json={"rows": [row("ok", "PASS"), {"messages": []}]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "rows[1]"
        r = h.post(
            f"/criteria/{name}/alignment",
            json={
                "rows": [
                    {
                        "messages": [{"role": "user", "content": "q"}],
                        "output": {"role": "assistant", "content": "a"},
                        "judgement": "fail",
                    }
                ]
            },
        )
        assert r.status_code == 201
        assert h.get(f"/criteria/{name}/alignment").json()["data"][-1]["judgement"] == "FAIL"


def test_alignment_writes_need_a_read_write_key_of_the_project(gateway: Gateway) -> None:

    name = f"guarded-{tag()}"
    with gateway.http() as h:
        assert (
            h.post(
                "/criteria", json={"name": name, "instructions": "x", "judge_model": "judge-json"}
            ).status_code
            == 201
        )
        assert h.post(f"/criteria/{name}/alignment", json={"rows": [row("a", "PASS")]}).status_code == 201
        row_id = h.get(f"/criteria/{name}/alignment").json()["data"][0]["id"]
    writes = [
        ("post", f"/criteria/{name}/alignment", {"rows": [row("b", "FAIL")]}),
        ("post", f"/criteria/{name}/alignment/sample", {"dataset_id": "x", "count": 1}),
        ("patch", f"/criteria/{name}/alignment/{row_id}", {"judgement": "FAIL"}),
        ("post", f"/criteria/{name}/alignment/run", {}),
    ]
    with gateway.http(gateway.read_only_key) as h:
        for method, path, body in writes:
            assert h.request(method, path, json=body).status_code == 403, path
        assert h.delete(f"/criteria/{name}/alignment/{row_id}").status_code == 403
        assert h.get(f"/criteria/{name}/alignment").status_code == 200  # reading is allowed
    stranger = KEY_RE.findall(gateway.cli("projects", "create", f"al-{tag()}").stdout)[0]
    with gateway.http(stranger) as h:
        for method, path, body in writes:
            assert h.request(method, path, json=body).status_code == 404, path
        for path in (
            f"/criteria/{name}/alignment",
            f"/criteria/{name}/alignment/stats",
            f"/criteria/{name}/alignment/compare",
        ):
            assert h.get(path).status_code == 404, path
    with gateway.http() as h:  # nothing changed
        (only,) = h.get(f"/criteria/{name}/alignment").json()["data"]
        assert only["judgement"] == "PASS"
