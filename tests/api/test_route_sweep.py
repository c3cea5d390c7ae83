"""Every project-scoped operation of the API document, walked with the wrong keys.

Project A owns one of everything (a logged call, a dataset with entries and a pruning rule, a
criterion with an alignment row, an eval and its job, an external provider, a provider key, a
mixture, a fallback chain, a stored response, a cached answer). Then:

- project B's read/write key calls every operation with A's ids in the path: none succeeds on
  A's things, no answer carries A's data, and A's things read back unchanged afterwards;
- A's read-only key calls every operation that changes something: each is refused with 403;
- project keys are refused every installation-wide write (projects, base models), and an admin
  key every project-scoped operation;
- A's keys and provider key appear nowhere in plain text: not in the database's files, not in
  the server's log.

The operations come from the server's own OpenAPI document, so a route added later is walked
too (and an unknown path parameter fails the test until it is given a value here).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from conftest import FakeProvider, Gateway, server_log

pytestmark = [pytest.mark.parametrize("gateway", ["sqlite"], indirect=True), pytest.mark.slow]

KEY_RE = re.compile(r"opk_[A-Za-z0-9_-]+")
# Calls a read-only key may make: model calls (answered, not logged), counting and reading.
READ_ONLY_ALLOWED = {
    ("post", "/chat/completions"),
    ("post", "/responses"),
    ("post", "/messages"),
    ("post", "/messages/count_tokens"),
    ("post", "/embeddings"),
    ("post", "/completions"),
    ("post", "/criteria/judge"),
    ("post", "/check-cache"),
}
# Installation-wide operations, guarded by the admin role rather than by project.
INSTALLATION_WIDE = ("/projects", "/base-models")
# Calls that reach a model or a provider: their isolation is tested where they live.
MODEL_CALLS = {path for _, path in READ_ONLY_ALLOWED} | {"/report", "/report-anthropic"}


@dataclass
class Tenant:
    name: str
    key: str
    read_only_key: str
    ids: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)


def _project(gateway: Gateway) -> Tenant:
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    out = gateway.cli("projects", "create", name)
    lines = out.stdout.splitlines()
    rw = next(m.group(0) for line in lines if "read/write key" in line and (m := KEY_RE.search(line)))
    ro = next(m.group(0) for line in lines if "read-only key" in line and (m := KEY_RE.search(line)))
    return Tenant(name, rw, ro)


def _ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json()


def _seed(gateway: Gateway, a: Tenant) -> None:
    """One of everything in project A, its ids kept under the path parameter names."""
    tag = uuid.uuid4().hex[:8]
    ids = a.ids
    provider_key = f"sk-sweep-{uuid.uuid4().hex}"
    a.secrets += [a.key, a.read_only_key, provider_key]
    a.content += [f"secret-{tag}", f"stored-{tag}", f"q0-{tag}", f"boilerplate-{tag}", f"ev-{tag}"]
    with gateway.http(a.key) as h:
        _ok(h.put("/provider-keys/gemini", json={"apiKey": provider_key}))
        ids["provider"] = "gemini"
        chat = {
            "model": "gemini:gemini-2.0-flash",
            "messages": [{"role": "user", "content": f"secret-{tag}"}],
        }
        _ok(h.post("/chat/completions", json=chat, headers={"op-cache": "readWrite"}))
        ids["call_id"] = _ok(h.get("/logs", params={"limit": 1}))["data"][0]["id"]
        stored = {"model": "gemini:gemini-2.0-flash", "input": f"stored-{tag}", "store": True}
        ids["response_id"] = _ok(h.post("/responses", json=stored))["id"]

        ids["dataset_id"] = _ok(h.post("/datasets", json={"name": f"ds-{tag}"}))["id"]
        entries = [
            {
                "messages": [
                    {"role": "user", "content": f"q{i}-{tag}"},
                    {"role": "assistant", "content": f"a{i}"},
                ],
                "split": "TEST",
            }
            for i in range(2)
        ]
        _ok(h.post(f"/datasets/{ids['dataset_id']}/entries", json={"entries": entries}))
        ids["entry_id"] = _ok(h.get(f"/datasets/{ids['dataset_id']}/entries"))["data"][0]["id"]
        rule = {"textToMatch": f"boilerplate-{tag}"}
        ids["rule_id"] = _ok(h.post(f"/datasets/{ids['dataset_id']}/pruning-rules", json=rule))["id"]

        crit = {"name": f"crit-{tag}", "instructions": "Polite?", "judge_model": "anthropic:judge-json"}
        ids["name"] = _ok(h.post("/criteria", json=crit))["name"]
        ids["criterion_id"] = f"{ids['name']}@v1"
        row = {
            "messages": [{"role": "user", "content": "hi"}],
            "output": {"role": "assistant", "content": "yo"},
        }
        _ok(h.post(f"/criteria/{ids['name']}/alignment", json={"rows": [row]}))
        ids["row_id"] = _ok(h.get(f"/criteria/{ids['criterion_id']}/alignment"))["data"][0]["id"]

        ev = {
            "name": f"ev-{tag}",
            "dataset_id": ids["dataset_id"],
            "type": "code",
            "models": ["gemini:gemini-2.0-flash"],
            "grader": "exact_match",
        }
        created = _ok(h.post("/evals", json=ev))
        ids["eval_id"], ids["job_id"] = created["id"], created["job_id"]

        slug = f"ext-{tag}"
        _ok(h.post("/external-providers", json={"slug": slug, "baseUrl": "http://127.0.0.1:9/v1"}))
        _ok(h.post(f"/external-providers/{slug}/models", json={"slug": "m"}))
        ids["slug"], ids["model"], ids["model_id"] = slug, "m", f"openpipe:{slug}/m"
        moa = {"slug": f"moa-{tag}", "proposers": ["gemini:gemini-2.0-flash"]}
        ids["moa_slug"] = _ok(h.post("/moa-configs", json=moa))["slug"]
        chain = {"fallbacks": ["gemini:gemini-2.0-flash"]}
        _ok(h.put("/routing/fallbacks/gpt-4o-mini", json=chain))
        ids["fallback_model"] = "gpt-4o-mini"
        ids["key_id"] = _ok(h.get("/keys"))["data"][0]["id"]


def _snapshot(gateway: Gateway, a: Tenant) -> dict[str, Any]:
    """What A reads back of its things (volatile fields left out)."""
    ids = a.ids
    paths = [
        f"/logs/{ids['call_id']}",
        f"/responses/{ids['response_id']}",
        f"/datasets/{ids['dataset_id']}",
        f"/datasets/{ids['dataset_id']}/entries",
        f"/datasets/{ids['dataset_id']}/pruning-rules",
        f"/criteria/{ids['criterion_id']}",
        f"/criteria/{ids['criterion_id']}/alignment",
        f"/evals/{ids['eval_id']}",
        "/external-providers",
        "/provider-keys",
        f"/moa-configs/{ids['moa_slug']}",
        "/routing",
        "/keys",
        "/cache",
    ]
    volatile = {"updated", "updatedAt", "lastUsed", "last_used", "progress", "status", "results", "judgement"}

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in volatile}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    with gateway.http(a.key) as h:
        return {p: strip(_ok(h.get(p))) for p in paths}


def _operations(gateway: Gateway) -> Iterator[tuple[str, str]]:
    doc = httpx.get(f"{gateway.root}/openapi.json").json()
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue  # /v1/... are the same handlers
        for method in ops:
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path.removeprefix("/api/v1")


def _fill(path: str, ids: dict[str, str]) -> str:
    names = {"slug": "moa_slug" if path.startswith("/moa-configs") else "slug", "model": "model"}
    if path.startswith("/routing/fallbacks"):
        names["model"] = "fallback_model"
    if path.startswith("/v1/models") or path.startswith("/models"):
        names["slug"] = "slug"

    def value(m: re.Match[str]) -> str:
        param = m.group(1)
        key = names.get(param, param)
        assert key in ids, f"no value for path parameter {param!r} in {path}: add one to the sweep"
        return ids[key]

    return re.sub(r"\{(\w+)(?::path)?\}", value, path)


# Paths keyed by a name the caller chooses (not an id A was given): B acting on them acts on its
# own namespace, which A's unchanged snapshot checks.
NAME_KEYED = {"/provider-keys/{provider}", "/routing/fallbacks/{model}", "/moa-configs/{slug}"}

# Valid bodies for the writes that take one, so that a refusal is about the caller, not the body.
BODIES: dict[tuple[str, str], Any] = {
    ("patch", "/datasets/{dataset_id}"): {"name": "hijacked"},
    ("patch", "/datasets/{dataset_id}/entries/{entry_id}"): {"split": "TRAIN"},
    ("post", "/datasets/{dataset_id}/entries"): {
        "entries": [{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}]
    },
    ("patch", "/datasets/{dataset_id}/pruning-rules/{rule_id}"): {"textToMatch": "hijacked"},
    ("post", "/datasets/{dataset_id}/pruning-rules"): {"textToMatch": "hijacked"},
    ("patch", "/criteria/{name}/alignment/{row_id}"): {"judgement": "FAIL"},
    ("post", "/criteria/{name}/alignment"): {
        "rows": [
            {"messages": [{"role": "user", "content": "x"}], "output": {"role": "assistant", "content": "y"}}
        ]
    },
    ("post", "/evals/{eval_id}/models"): {"models": ["gpt-4o"]},
    ("post", "/external-providers/{slug}/models"): {"slug": "hijacked"},
    ("put", "/moa-configs/{slug}"): {"proposers": ["gpt-4o"]},
    ("put", "/routing/fallbacks/{model}"): {"fallbacks": ["gpt-4o"]},
    ("patch", "/keys/{key_id}"): {"name": "hijacked"},
    ("put", "/provider-keys/{provider}"): {"apiKey": "sk-hijacked"},
}


@pytest.fixture(scope="module")
def tenants(gateway: Gateway, fake_provider: FakeProvider) -> tuple[Tenant, Tenant]:
    a, b = _project(gateway), _project(gateway)
    _seed(gateway, a)
    b.ids = dict(a.ids)  # B aims at A's things
    return a, b


def test_route_sweep_another_project_reaches_nothing(
    gateway: Gateway, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    before = _snapshot(gateway, a)
    # An error may name the id the caller sent; an answer that succeeded names none of A's, and
    # nothing ever carries A's content or credentials.
    ids = [a.ids[k] for k in ("dataset_id", "entry_id", "eval_id", "call_id", "response_id", "rule_id")]
    ids += [a.ids["name"], a.ids["slug"], a.ids["moa_slug"]]
    walked = 0
    with gateway.http(b.key) as h:
        for method, template in _operations(gateway):
            if template.startswith(INSTALLATION_WIDE) or template in MODEL_CALLS:
                continue
            path = _fill(template, b.ids)
            r = h.request(method, path, json=BODIES.get((method, template), {}) if method != "get" else None)
            walked += 1
            assert r.status_code < 500, f"{method.upper()} {template}: {r.status_code} {r.text}"
            own = template in NAME_KEYED or r.status_code >= 400
            for secret in [*a.secrets, *a.content, *(ids if not own else [])]:
                assert secret not in r.text, f"{method.upper()} {template} answered B with A's {secret!r}"
            if "{" in template and method != "get" and template not in NAME_KEYED:
                assert r.status_code >= 400, f"{method.upper()} {template} changed A's thing for B: {r.text}"
    assert walked >= 40
    assert _snapshot(gateway, a) == before


def test_route_sweep_read_only_key_changes_nothing(gateway: Gateway, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    before = _snapshot(gateway, a)
    refused = []
    with gateway.http(a.read_only_key) as h:
        for method, template in _operations(gateway):
            if method == "get" or (method, template) in READ_ONLY_ALLOWED:
                continue
            r = h.request(method, _fill(template, a.ids), json=BODIES.get((method, template), {}))
            assert r.status_code == 403, f"read-only {method.upper()} {template}: {r.status_code} {r.text}"
            assert r.json()["error"]["type"], r.text
            refused.append(template)
    assert len(refused) >= 30
    assert _snapshot(gateway, a) == before


def test_route_sweep_no_credential_in_plain_text(gateway: Gateway, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    files = [p for p in gateway.home.rglob("*") if p.is_file() and p.name.startswith("tunepipe.db")]
    assert files, list(gateway.home.iterdir())
    port = int(gateway.root.rsplit(":", 1)[1])
    log = server_log(gateway.env, port).read_bytes()
    for secret in a.secrets:
        assert secret.encode() not in log, "a credential in the server log"
        for f in files:
            assert secret.encode() not in f.read_bytes(), f"a credential in plain text in {f.name}"


def test_route_sweep_keys_stay_in_their_role(gateway: Gateway, tenants: tuple[Tenant, Tenant]) -> None:
    """Project keys are refused every installation-wide write; an admin key is refused every
    project-scoped operation (it belongs to no project) and changes none of A's things."""
    a, b = tenants
    before = _snapshot(gateway, a)
    admin, installation, project = gateway.admin_key, 0, 0
    for method, template in _operations(gateway):
        body = BODIES.get((method, template), {}) if method != "get" else None
        if template.startswith(INSTALLATION_WIDE):
            if method == "get" and template == "/base-models":
                continue  # names only, for choosing a base model: checked in test_admin_role
            for key in (b.key, a.read_only_key):
                r = httpx.request(
                    method,
                    f"{gateway.base_url}{_fill(template, {'name': a.name})}",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert r.status_code == 403, (
                    f"project key {method.upper()} {template}: {r.status_code} {r.text}"
                )
            installation += 1
        else:
            r = httpx.request(
                method,
                f"{gateway.base_url}{_fill(template, a.ids)}",
                json=body,
                headers={"Authorization": f"Bearer {admin}"},
                timeout=30,
            )
            assert r.status_code == 403, f"admin key {method.upper()} {template}: {r.status_code} {r.text}"
            assert not any(s in r.text for s in a.content)
            project += 1
    assert installation >= 4 and project >= 50
    assert _snapshot(gateway, a) == before
