"""``GET /models`` and ``GET /models/{id}`` as OpenAI's Models API: every listed item is a valid
OpenAI Model (``created`` in Unix seconds), every listed id can be retrieved (ids with ``/`` and
``:`` included), an unknown id is a 404 ``model_not_found``, and a project sees only its own
fine-tunes and external models.

The fine-tune is written straight to the database: listing and retrieving it needs no training.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from openai.types import Model as OpenAIModel
from openpipe.client import OpenPipe

from conftest import KEY_RE, FakeProvider, Gateway
from tunepipe.db import fine_tunes as ft_repo
from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.projects import get_project
from tunepipe.domain.clock import now_ms
from tunepipe.domain.fine_tunes import FineTune
from tunepipe.domain.ids import uuid7

# External models (ids `openpipe:<provider>/<model>`); one ends like a fine-tune sub-resource.
EXTERNAL_MODELS = ("llama-3.1-8b-instruct", "adapter")


@dataclass
class Tenant:
    name: str
    key: str
    fine_tune: str  # slug
    provider: str  # external provider slug


def _project(gw: Gateway) -> tuple[str, str]:
    name = f"models-{uuid.uuid4().hex[:8]}"
    keys = KEY_RE.findall(gw.cli("projects", "create", name).stdout)
    assert len(keys) == 2
    return name, keys[0]


def _fine_tune(gw: Gateway, project: str) -> str:
    db = Database(make_engine(gw.env.get("TUNEPIPE_DATABASE_URL") or f"sqlite:///{gw.home / 'tunepipe.db'}"))
    try:
        project_id = db.run_sync(get_project, project).id
        now = now_ms()
        ft = FineTune(
            id=uuid7(),
            project_id=project_id,
            slug=f"ft-{uuid.uuid4().hex[:8]}",
            dataset_id=None,
            provider="openpipe",
            base_model="not-installed",
            root_model="not-installed",
            parent_id=None,
            status="ERROR",
            error_message="written by the test",
            description=None,
            default_temperature=None,
            training_config={"provider": "openpipe", "baseModel": "not-installed"},
            hyperparameters={"sft": {"enabled": True}},
            pruning_rule_ids=[],
            metrics={},
            train_rows=0,
            test_rows=0,
            created_at=now,
            updated_at=now,
            training_started_at=None,
            training_finished_at=None,
        )
        db.run_sync(ft_repo.create, ft)
        return ft.slug
    finally:
        db.dispose()


def _tenant(gw: Gateway, fake: FakeProvider) -> Tenant:
    name, key = _project(gw)
    provider = f"ext-{uuid.uuid4().hex[:8]}"
    with gw.http(key) as h:
        r = h.post("/external-providers", json={"slug": provider, "baseUrl": f"{fake.url}/v1"})
        assert r.status_code == 201, r.text
        for model in EXTERNAL_MODELS:
            body = {"slug": model, "inputCostPerMillion": 0.2, "outputCostPerMillion": 0.4}
            r = h.post(f"/external-providers/{provider}/models", json=body)
            assert r.status_code == 201, r.text
    return Tenant(name, key, _fine_tune(gw, name), provider)


@pytest.fixture(scope="module")
def tenants(gateway: Gateway, fake_provider: FakeProvider) -> Iterator[tuple[Tenant, Tenant]]:
    yield _tenant(gateway, fake_provider), _tenant(gateway, fake_provider)


def _raw_list(gw: Gateway, key: str) -> list[dict[str, Any]]:
    with gw.http(key) as h:
        r = h.get("/models")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    return list(body["data"])


def test_models_list_items_are_openai_models(gateway: Gateway, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    items = _raw_list(gateway, a.key)
    assert items
    for item in items:
        # `created` is an int of seconds (not a bool, not an ISO string), as OpenAI's Model has it.
        assert type(item["created"]) is int and 0 <= item["created"] <= now_ms() // 1000, item
        assert item["object"] == "model" and isinstance(item["id"], str) and isinstance(item["owned_by"], str)
        assert type(item["contextWindow"]) is int and type(item["maxCompletionTokens"]) is int
        OpenAIModel.model_validate(item, strict=True)
    by_id = {m["id"]: m for m in items}
    assert (by_id["gpt-4o"]["contextWindow"], by_id["gpt-4o"]["maxCompletionTokens"]) == (128_000, 16_384)
    assert by_id["anthropic:claude-3-5-sonnet"]["contextWindow"] == 200_000
    assert by_id["gemini:gemini-1.5-pro"]["contextWindow"] == 2_097_152
    external = by_id[f"openpipe:{a.provider}/{EXTERNAL_MODELS[0]}"]
    assert external["contextWindow"] == 0  # unknown (the openpipe SDK refuses null)
    assert external["pricing"] == {"chatIn": 0.2, "chatOut": 0.4}
    ft = by_id[a.fine_tune]
    assert ft["owned_by"] == a.name and ft["openpipe"]["status"] == "ERROR"
    assert abs(ft["created"] - now_ms() // 1000) < 600


def test_models_retrieve_every_listed_id(gateway: Gateway, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    client = gateway.client(a.key)
    listed = {m.id: m for m in client.models.list()}
    expected = {a.fine_tune, "gpt-4o", *(f"openpipe:{a.provider}/{m}" for m in EXTERNAL_MODELS)}
    assert expected <= set(listed)
    raw = {m["id"]: m for m in _raw_list(gateway, a.key)}
    with gateway.http(a.key) as h:
        for model_id, model in listed.items():
            got = client.models.retrieve(model_id)
            assert (got.id, got.created, got.owned_by) == (model_id, model.created, model.owned_by)
            assert isinstance(got.created, int)
            r = h.get(f"/models/{model_id}")
            assert r.status_code == 200, (model_id, r.text)
            assert r.json() == raw[model_id]


def test_models_retrieve_aliases_of_listed_ids(gateway: Gateway, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    client = gateway.client(a.key)
    prefixed = client.models.retrieve("openai:gpt-4o")
    assert (prefixed.id, prefixed.owned_by) == ("openai:gpt-4o", "openai")
    assert client.models.retrieve(f"openpipe:{a.fine_tune}").id == a.fine_tune


def test_models_retrieve_unknown_is_a_404(gateway: Gateway, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    client = gateway.client(a.key)
    for unknown in ("no-such-model", "openai:no-such-model", f"openpipe:{a.provider}/nope", "local:a/b/c"):
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve(unknown)
        body: Any = info.value.body
        assert body["code"] == "model_not_found" and body["param"] == "model", body
        assert unknown in body["message"]
    with gateway.http(a.key) as h:
        r = h.get("/models/no-such-model")
    assert r.status_code == 404
    envelope = r.json()
    assert envelope["error"]["code"] == "model_not_found" and envelope["code"] == "NOT_FOUND"
    assert envelope["error"]["type"] == "not_found_error"


def test_models_read_only_key_cannot_retrieve_plain_openai(
    gateway: Gateway, tenants: tuple[Tenant, Tenant]
) -> None:
    with pytest.raises(openai.NotFoundError):
        gateway.client(gateway.read_only_key).models.retrieve("gpt-4o")
    assert gateway.client(gateway.read_only_key).models.retrieve("anthropic:claude-3-5-sonnet").id


def test_models_fine_tune_sub_routes_are_not_shadowed(
    gateway: Gateway, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    with gateway.http(a.key) as h:
        outputs = h.get(f"/models/{a.fine_tune}/test-outputs")
        assert outputs.status_code == 200, outputs.text
        assert outputs.json()["object"] == "list" and outputs.json()["model"] == a.fine_tune
        adapter = h.get(f"/models/{a.fine_tune}/adapter")
        assert adapter.status_code == 404 and "no trained adapter" in adapter.json()["message"]
        missing = h.get("/models/not-a-fine-tune/weights")
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "slug"


def test_models_other_project_sees_nothing_of_the_first(
    gateway: Gateway, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    mine = {m.id for m in gateway.client(a.key).models.list()}
    theirs = {m.id for m in gateway.client(b.key).models.list()}
    a_only = {a.fine_tune, *(f"openpipe:{a.provider}/{m}" for m in EXTERNAL_MODELS)}
    assert a_only <= mine and not (a_only & theirs)
    assert b.fine_tune in theirs and b.fine_tune not in mine
    client_b = gateway.client(b.key)
    for model_id in (*a_only, f"openpipe:{a.fine_tune}"):
        with pytest.raises(openai.NotFoundError):
            client_b.models.retrieve(model_id)
    with gateway.http(b.key) as h:
        assert h.get(f"/models/{a.fine_tune}/test-outputs").status_code == 404


def test_models_openpipe_sdk_reads_list_and_get(gateway: Gateway, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    op = OpenPipe(api_key=a.key, base_url=gateway.base_url)
    listed = {m.id: m for m in op.list_models().data}
    assert listed["gpt-4o"].context_window == 128_000 and listed["gpt-4o"].created.isdigit()
    got = op.get_model(model_slug=a.fine_tune)
    assert got.id == a.fine_tune and got.openpipe.status.value == "ERROR"
