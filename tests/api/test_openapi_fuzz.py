"""Every operation of the server's own API document, fuzzed by schemathesis: no answer is a 5xx,
and every answer is what the document declares (status, content type, body schema).

The server is one of this module's own (SQLite), never the session's shared one: a fuzzer that
deletes, cancels and renames must not change what other tests see. It is seeded with a dataset
(two entries, a pruning rule), a criterion with an alignment row, an eval, a mixture-of-agents
configuration, an external provider with a model, a fallback chain and a logged call, and each
operation with path parameters is run with generated ids (mostly 404s, whose envelope is checked
too) and with the seeded ones, so the 2xx shapes of "get one", "update one" and "delete one" are
checked against real objects. Deletions run last, the innermost first. Every operation also gets
inputs the document refuses (schemathesis' negative mode): their 400s are checked too. The key is
the default project's read/write key; admin operations (``/projects``, ``POST /base-models``)
answer it with 401/403, which is checked as such. The inputs are the same on every run
(``derandomize``); raise ``EXAMPLES`` and turn that off locally to explore further.

Only the ``/v1`` prefix is fuzzed: ``/api/v1`` mounts the same routes (a test in
``test_openapi.py`` holds the two prefixes to the same operations).

Operations fuzzed with fewer guarantees, and why:

* ``POST /models`` and ``POST /unstable/finetune/create`` (training): a generated body names no
  dataset of the project, so they answer 400/404; a training run is not started here (minutes).
* ``GET /models/{slug}/adapter``, ``…/weights``, ``…/test-outputs`` and ``POST …/cancel``: no
  trained model exists, so 404 (the downloads' media types are checked by the unit test).
* ``/datasets/{id}/jobs/{job_id}``: the seeded job is the eval's, not a dataset job's, so 404.
* ``POST …/upload`` (multipart files): generated, but the generator's files are not JSONL; the
  all-or-nothing 400 (with line errors) is what is checked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import FakeProvider, Gateway, own_gateway

EXAMPLES = 3  # per operation, generation mode and set of path parameters
PREFIX = "/v1"
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)  # valid input, and input the document refuses
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with own_gateway(fake_provider, tmp_path_factory.mktemp("fuzzed")) as gw:
        yield gw


def _seed(gw: Gateway) -> dict[str, dict[str, str]]:
    """Objects for the operations' path parameters: by path prefix, then by parameter name."""
    with httpx.Client(
        base_url=gw.root + PREFIX, headers={"Authorization": f"Bearer {gw.key}"}, timeout=30
    ) as h:

        def ok(r: httpx.Response) -> Any:
            assert r.status_code < 300, r.text
            return r.json()

        ds = ok(h.post("/datasets", json={"name": "fuzzed"}))["id"]
        messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
        entries = [{"messages": messages, "split": split} for split in ("TRAIN", "TEST")]
        ok(h.post(f"/datasets/{ds}/entries", json={"entries": entries}))
        entry = ok(h.get(f"/datasets/{ds}/entries"))["data"][0]["id"]
        rule = ok(h.post(f"/datasets/{ds}/pruning-rules", json={"textToMatch": "2+2"}))["id"]
        criterion = ok(
            h.post(
                "/criteria", json={"name": "fuzzed", "instructions": "Is it right?", "judge_model": "gpt-4o"}
            )
        )
        ok(h.post("/criteria/fuzzed/alignment", json={"rows": [{"messages": messages, "judgement": "PASS"}]}))
        row = ok(h.get(f"/criteria/{criterion['id']}/alignment"))["data"][0]["id"]
        ev = ok(
            h.post(
                "/evals",
                json={
                    "name": "fuzzed",
                    "dataset_id": ds,
                    "type": "code",
                    "models": ["gpt-4o"],
                    "grader": "exact_match",
                },
            )
        )
        ok(h.post("/moa-configs", json={"slug": "fuzzed", "proposers": ["gpt-4o"]}))
        ok(h.post("/external-providers", json={"slug": "fuzzed", "baseUrl": f"{gw.env['OPENAI_BASE_URL']}"}))
        ok(h.post("/external-providers/fuzzed/models", json={"slug": "m1"}))
        ok(h.put("/routing/fallbacks/gpt-4o", json={"fallbacks": ["gpt-4o-mini"]}))
        # A key of its own for the key routes: DELETE /keys/{key_id} revokes it, not the fuzzer's.
        gw.cli("keys", "create", "--name", "fuzzed-spare")
        key_id = next(k["id"] for k in ok(h.get("/keys"))["data"] if k["name"] == "fuzzed-spare")
        ok(h.post("/chat/completions", json={"model": "gpt-4o", "messages": messages[:1]}))
        deadline = time.monotonic() + 10
        while not (logged := ok(h.get("/logs", params={"limit": 1}))["data"]):  # written in the background
            assert time.monotonic() < deadline, "the call was not logged"
            time.sleep(0.05)
    common = {
        "dataset_id": ds,
        "entry_id": entry,
        "rule_id": rule,
        "criterion_id": criterion["id"],
        "name": "fuzzed",
        "row_id": row,
        "eval_id": ev["id"],
        "job_id": ev["job_id"],
        "key_id": key_id,
        "call_id": logged[0]["id"],
        "model_id": "gpt-4o",
        "model": "gpt-4o",
        "provider": "openai",
    }
    return {
        "/moa-configs/": common | {"slug": "fuzzed"},
        "/external-providers/": common | {"slug": "fuzzed", "model": "m1"},
        "/": common,
    }


def _seeded(seeds: dict[str, dict[str, str]], path: str) -> dict[str, str]:
    return next((ids for prefix, ids in seeds.items() if path.startswith(PREFIX + prefix)), seeds["/"])


def _operations(schema: Any) -> list[Any]:
    ops = [result.ok() for result in schema.get_all_operations()]
    mine = [op for op in ops if op.path.startswith(PREFIX + "/") or op.path == "/health"]

    # Deletions last, the innermost first (an entry before its dataset), the seeded dataset last.
    def order(op: Any) -> tuple[bool, int, bool]:
        delete = op.method.lower() == "delete"
        return (delete, -op.path.count("/") if delete else 0, op.path.endswith("/datasets/{dataset_id}"))

    return sorted(mine, key=order)


@pytest.mark.slow
def test_openapi_fuzz_every_operation_answers_as_documented(fuzzed: Gateway) -> None:
    document = httpx.get(f"{fuzzed.root}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    seeded = _seed(fuzzed)
    headers = {"Authorization": f"Bearer {fuzzed.key}"}
    failures: dict[str, str] = {}
    statuses: dict[str, set[int]] = {}
    session = requests.Session()

    def run(op: Any, path_parameters: dict[str, str] | None, mode: GenerationMode) -> None:
        label = f"{op.method.upper()} {op.path}" + (" (seeded)" if path_parameters else "") + f" {mode.value}"

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same inputs on every run; raise EXAMPLES locally to explore
            phases=[Phase.explicit, Phase.generate],  # failures are collected, not shrunk
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy(mode, path_parameters=path_parameters))
        def one(case: Any) -> None:
            try:
                response = case.call(base_url=fuzzed.root, session=session, headers=headers, timeout=30)
            except requests.ConnectionError as exc:  # the server dropped the connection: a bug too
                failures.setdefault(label, f"no answer: {exc}\n{case.as_curl_command(headers)}"[:1500])
                return
            statuses.setdefault(label, set()).add(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis: Failure, FailureGroup
                failures.setdefault(label, f"{exc}"[:1500])

        try:
            one()
        except Unsatisfiable:  # negative mode: nothing to break (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, label

    started = time.perf_counter()
    operations = _operations(schema)
    for op in operations:
        names = {p.name for p in op.path_parameters}
        for mode in MODES:
            run(op, None, mode)
        ids = _seeded(seeded, op.path)
        if names and names <= ids.keys():
            run(op, {n: ids[n] for n in names}, GenerationMode.POSITIVE)
    elapsed = time.perf_counter() - started
    ok = sum(1 for codes in statuses.values() if any(200 <= c < 300 for c in codes))
    print(f"\n{len(operations)} operations, {len(statuses)} runs, {ok} with a 2xx, {elapsed:.1f} s")
    answered = {
        label.rsplit(" ", 1)[0].removesuffix(" (seeded)")
        for label, codes in statuses.items()
        if min(codes) < 300
    }
    print("never a 2xx:", sorted({f"{op.method.upper()} {op.path}" for op in operations} - answered))
    assert len(operations) > 100
    assert not failures, f"{len(failures)} failing:\n" + "\n\n".join(f"{k}: {v}" for k, v in failures.items())
    assert ok >= len(operations) // 3, statuses


@pytest.mark.parametrize("stream", [False, True])
def test_openapi_fuzz_model_name_with_control_characters_is_answered(fuzzed: Gateway, stream: bool) -> None:
    """Found by the fuzzer: ``op-model`` echoes the model's name, and a control character in a
    header made the server drop the connection instead of answering."""
    model = "\x0bq\x98"
    r = httpx.post(
        f"{fuzzed.root}{PREFIX}/responses",
        json={"model": model, "input": "hello", "stream": stream},
        headers={"Authorization": f"Bearer {fuzzed.key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.headers["op-model"] == "%0Bq%C2%98"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/provider-keys/openai", {"apiKey": "sk-one\ntwo"}, "apiKey"),
        ("/provider-keys/openai", {"baseUrl": "http://127.0.0.1:9/v1\r\n"}, "baseUrl"),
        (
            "/external-providers",
            {"slug": "ctl", "baseUrl": "http://127.0.0.1:9/v1", "apiKey": "k\x07"},
            "apiKey",
        ),
        (
            "/external-providers",
            {"slug": "ctl", "baseUrl": "http://127.0.0.1:9/v1", "apiVersion": "2024\x7f"},
            "apiVersion",
        ),
    ],
)
def test_openapi_fuzz_credentials_with_control_characters_are_refused(
    fuzzed: Gateway, path: str, body: dict[str, str], param: str
) -> None:
    """Found by the fuzzer: a provider key with a newline was stored, then every call routed with
    it failed with a 500 (the HTTP client refuses to send such a header)."""
    method = "PUT" if path.startswith("/provider-keys") else "POST"
    r = httpx.request(
        method, f"{fuzzed.root}{PREFIX}{path}", json=body, headers={"Authorization": f"Bearer {fuzzed.key}"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize("path", ["/models/a%0Ab", "/routing/fallbacks/a%0Ab", "/base-models/a%0Ab"])
def test_openapi_fuzz_path_with_a_line_break_is_not_found(fuzzed: Gateway, path: str) -> None:
    """Found by the fuzzer: a `{name:path}` parameter refused a line break that `{name}` takes, so
    `GET /models/a%0Ab` matched only `DELETE /models/{slug}` and was answered 405."""
    r = httpx.get(f"{fuzzed.root}{PREFIX}/models/a%0Ab", headers={"Authorization": f"Bearer {fuzzed.key}"})
    assert r.status_code == 404, r.text
    r = httpx.delete(f"{fuzzed.root}{PREFIX}{path}", headers={"Authorization": f"Bearer {fuzzed.key}"})
    assert r.status_code in (403, 404), r.text  # base models are an admin's


def test_openapi_fuzz_eval_rows_offset_past_64_bits_is_a_400(fuzzed: Gateway) -> None:
    """Found by the fuzzer: an ``offset`` beyond a 64-bit integer reached the database (a 500)."""
    r = httpx.get(
        f"{fuzzed.root}{PREFIX}/evals/any/rows",
        params={"offset": 2**75},
        headers={"Authorization": f"Bearer {fuzzed.key}"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "offset"
