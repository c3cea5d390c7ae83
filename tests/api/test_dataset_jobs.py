"""Dataset jobs over REST on both backends: import from request logs (filters, sampling,
de-duplication, errors left out) and relabeling with the fake provider."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from conftest import KEY_RE, Gateway


def tag() -> str:
    return uuid.uuid4().hex[:12]


def new_dataset(gateway: Gateway, key: str | None = None) -> str:
    with gateway.http(key) as h:
        r = h.post("/datasets", json={"name": f"jobs-{tag()}"})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])


def chat(gateway: Gateway, text: str, run: str, model: str = "gpt-4o-mini") -> None:
    gateway.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], metadata={"run": run}
    )


def start(
    gateway: Gateway, dataset_id: str, action: str, body: dict[str, Any], key: str | None = None
) -> Any:
    with gateway.http(key) as h:
        r = h.post(f"/datasets/{dataset_id}/{action}", json=body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["object"] == "dataset.job" and job["status"] in ("QUEUED", "RUNNING", "DONE")
    return job


def wait(gateway: Gateway, dataset_id: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    with gateway.http() as h:
        while time.monotonic() < deadline:
            job: dict[str, Any] = h.get(f"/datasets/{dataset_id}/jobs/{job_id}").json()
            if job["status"] in ("DONE", "ERROR"):
                return job
            time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def run_job(gateway: Gateway, dataset_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    return wait(gateway, dataset_id, start(gateway, dataset_id, action, body)["id"])


def entries(gateway: Gateway, dataset_id: str) -> list[dict[str, Any]]:
    with gateway.http() as h:
        r = h.get(f"/datasets/{dataset_id}/entries", params={"limit": 500})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


@pytest.fixture(scope="module")
def other_key(gateway: Gateway) -> Iterator[str]:
    out = gateway.cli("projects", "create", f"jobsother-{tag()}").stdout
    keys = KEY_RE.findall(out)
    assert len(keys) == 2, out
    yield keys[0]


def test_import_logs_filters_by_metadata_and_keeps_the_log_id(gateway: Gateway) -> None:
    run = tag()
    for i in range(3):
        chat(gateway, f"hello {run} {i}", run)
    chat(gateway, f"other {run}", tag())  # another label: not imported
    with pytest.raises(openai.InternalServerError):
        chat(gateway, f"broken {run}", run, model="fail-500")  # errors are never imported
    ds = new_dataset(gateway)
    job = run_job(gateway, ds, "import-logs", {"filters": {"metadata": {"run": run}}})
    assert job["status"] == "DONE", job
    assert (job["done"], job["total"], job["created"], job["skipped"]) == (3, 3, 3, 0)
    got = entries(gateway, ds)
    assert sorted(e["messages"][0]["content"] for e in got) == [f"hello {run} {i}" for i in range(3)]
    for e in got:
        assert e["provenance"] == "REQUEST_LOG" and e["split"] in ("TRAIN", "TEST")
        assert e["output"] == {"role": "assistant", "content": f"echo: {e['messages'][0]['content']}"}
        assert e["metadata"] == {"run": run}
        with gateway.http() as h:
            log = h.get(f"/logs/{e['logged_call_id']}").json()
        assert log["statusCode"] == 200 and log["metadata"]["run"] == run


def test_import_logs_filters_by_model_and_keeps_tools(gateway: Gateway) -> None:
    run = tag()
    chat(gateway, f"mini {run}", run, model="gpt-4o-mini")
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    gateway.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"big {run}"}],
        tools=tools,  # type: ignore[list-item]
        metadata={"run": run},
    )
    ds = new_dataset(gateway)
    job = run_job(gateway, ds, "import-logs", {"filters": {"metadata": {"run": run}, "model": "gpt-4o"}})
    assert (job["status"], job["created"]) == ("DONE", 1)
    [entry] = entries(gateway, ds)
    assert entry["messages"][0]["content"] == f"big {run}" and entry["tools"] == tools
    assert entry["output"]["tool_calls"][0]["function"]["name"] == "lookup"


def test_import_logs_dedupes_within_an_import_and_across_imports(gateway: Gateway) -> None:
    run = tag()
    for text in ("same", "same", "different"):
        chat(gateway, f"{text} {run}", run)
    ds = new_dataset(gateway)
    body = {"filters": {"metadata": {"run": run}}}
    first = run_job(gateway, ds, "import-logs", body)
    assert (first["created"], first["skipped"]) == (2, 1)
    second = run_job(gateway, ds, "import-logs", body)
    assert (second["status"], second["created"], second["skipped"]) == ("DONE", 0, 3)
    assert len(entries(gateway, ds)) == 2
    third = run_job(gateway, ds, "import-logs", {**body, "dedupe": False})
    assert third["created"] == 3 and len(entries(gateway, ds)) == 5


def test_import_logs_samples_reproducibly_with_a_seed(gateway: Gateway) -> None:
    run = tag()
    for i in range(8):
        chat(gateway, f"sample {run} {i}", run)
    picked = []
    for _ in range(2):
        ds = new_dataset(gateway)
        job = run_job(
            gateway, ds, "import-logs", {"filters": {"metadata": {"run": run}}, "sample_size": 3, "seed": 7}
        )
        assert (job["status"], job["done"], job["created"], job["params"]["seed"]) == ("DONE", 8, 3, 7)
        picked.append(sorted(e["logged_call_id"] for e in entries(gateway, ds)))
    assert picked[0] == picked[1] and len(set(picked[0])) == 3


def test_import_logs_stops_at_max_entries(gateway: Gateway) -> None:
    run = tag()
    for i in range(5):
        chat(gateway, f"capped {run} {i}", run)
    ds = new_dataset(gateway)
    job = run_job(gateway, ds, "import-logs", {"filters": {"metadata": {"run": run}}, "max_entries": 2})
    assert (job["status"], job["created"], job["capped"]) == ("DONE", 2, True)
    assert len(entries(gateway, ds)) == 2
    with gateway.http() as h:  # a sample larger than what an import may create is refused up front
        r = h.post(f"/datasets/{ds}/import-logs", json={"sample_size": 1_000_000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "sample_size"


def test_import_logs_rejects_bad_filters(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    with gateway.http() as h:
        r = h.post(f"/datasets/{ds}/import-logs", json={"filters": {"since": "yesterday"}})
        assert r.status_code == 400 and r.json()["error"]["param"] == "filters.since"
        assert h.post(f"/datasets/{ds}/import-logs", json={"sample_size": 0}).status_code == 400
        assert h.post("/datasets/nope/import-logs", json={}).status_code == 404


def test_relabel_replaces_outputs_and_keeps_the_originals(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"old answer {i}"},
            ],
            "split": "TRAIN" if i < 3 else "TEST",
        }
        for i in range(4)
    ]
    with gateway.http() as h:
        assert h.post(f"/datasets/{ds}/entries", json={"entries": rows}).json()["entries_created"] == 4
    job = run_job(gateway, ds, "relabel", {"model": "gpt-4o", "split": "TRAIN"})
    assert (job["status"], job["total"], job["done"], job["created"], job["skipped"]) == ("DONE", 3, 3, 3, 0)
    by_question = {e["messages"][0]["content"]: e for e in entries(gateway, ds)}
    for i in range(3):
        e = by_question[f"q{i}"]
        assert e["output"] == {"role": "assistant", "content": f"echo: q{i}"}
        assert e["original_output"] == {"role": "assistant", "content": f"old answer {i}"}
        assert e["provenance"] == "RELABELED_BY_MODEL"
    untouched = by_question["q3"]
    assert untouched["output"]["content"] == "old answer 3" and untouched["provenance"] == "API"
    # Relabeling again keeps the first original; selecting by id works too.
    again = run_job(
        gateway,
        ds,
        "relabel",
        {"model": "anthropic:claude-3-5-sonnet", "entry_ids": [by_question["q0"]["id"]]},
    )
    assert (again["status"], again["created"]) == ("DONE", 1)
    with gateway.http() as h:
        e = h.get(f"/datasets/{ds}/entries/{by_question['q0']['id']}").json()
    assert e["original_output"]["content"] == "old answer 0"


def test_relabel_with_an_unroutable_model_fails_the_job(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    with gateway.http() as h:
        h.post(f"/datasets/{ds}/entries", json={"entries": [row]})
    job = run_job(gateway, ds, "relabel", {"model": "openpipe:nowhere/model"})
    assert job["status"] == "ERROR" and "nowhere" in job["error_message"]
    failing = run_job(gateway, ds, "relabel", {"model": "fail-500"})
    assert failing["status"] == "ERROR" and failing["skipped"] == 1
    assert failing["error_message"].startswith("Every entry failed")
    [entry] = entries(gateway, ds)
    assert entry["output"]["content"] == "a" and entry["original_output"] is None
    with gateway.http() as h:
        listed = h.get(f"/datasets/{ds}/jobs").json()["data"]
    assert [j["id"] for j in listed] == [failing["id"], job["id"]]


def test_dataset_jobs_are_scoped_by_project(gateway: Gateway, other_key: str) -> None:
    run = tag()
    chat(gateway, f"mine {run}", run)
    ds = new_dataset(gateway)
    job = run_job(gateway, ds, "import-logs", {"filters": {"metadata": {"run": run}}})
    with gateway.http(other_key) as h:
        assert h.get(f"/datasets/{ds}/jobs/{job['id']}").status_code == 404
        assert h.get(f"/datasets/{ds}/jobs").status_code == 404
        assert h.post(f"/datasets/{ds}/relabel", json={"model": "gpt-4o"}).status_code == 404
    theirs = new_dataset(gateway, other_key)
    their_job = start(gateway, theirs, "import-logs", {"filters": {"metadata": {"run": run}}}, key=other_key)
    deadline = time.monotonic() + 30
    with gateway.http(other_key) as h:
        while (j := h.get(f"/datasets/{theirs}/jobs/{their_job['id']}").json())["status"] not in (
            "DONE",
            "ERROR",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (j["status"], j["created"]) == ("DONE", 0)


def test_dataset_jobs_need_a_read_write_key(gateway: Gateway) -> None:
    ds = new_dataset(gateway)
    with gateway.http(gateway.read_only_key) as h:
        assert h.post(f"/datasets/{ds}/import-logs", json={}).status_code == 403
        assert h.post(f"/datasets/{ds}/relabel", json={"model": "gpt-4o"}).status_code == 403
        assert h.get(f"/datasets/{ds}/jobs").status_code == 200
