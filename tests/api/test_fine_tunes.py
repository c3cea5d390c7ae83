"""Fine-tunes through the official ``openpipe`` SDK (``create_model``, ``get_model``,
``list_models``, ``delete_model``, the deprecated ``unstable_finetune_*``) and tunepipe's extra
routes, on both backends.

Two kinds of model are used. Serving tests (chat at ``openpipe:<slug>``, pruning at inference,
``defaultTemperature``, downloads, delete) put a DEPLOYED model straight into the database with
a random LoRA adapter built here, so they do not depend on training. The lifecycle test trains a
tiny model for real (a worker inside the server, a few steps) and is marked ``slow``.

Everything runs in a project of its own, so the default project's model list stays as other
tests expect it.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from openpipe.api_client.core.api_error import ApiError
from openpipe.client import OpenPipe
from sqlalchemy import Connection

from conftest import KEY_RE, Gateway
from engine.conftest import build_lora, build_test_model
from tunepipe.db import fine_tunes as ft_repo
from tunepipe.db import pruning_rules as rule_repo
from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.projects import get_project
from tunepipe.domain.clock import now_ms
from tunepipe.domain.fine_tunes import FineTune
from tunepipe.domain.ids import uuid7
from tunepipe.services.fine_tunes import files as fine_tune_files

RULE = "You are the ACME support assistant. Follow the ACME policy at all times."
STATUSES = {"PENDING", "QUEUED", "TRAINING", "DEPLOYED"}


@dataclass
class Project:
    name: str
    id: str
    key: str
    read_only_key: str
    db: Database
    base: str  # a registered tiny base model
    base_dir: Path
    adapter_dir: Path

    def op(self, gw: Gateway) -> OpenPipe:
        return OpenPipe(api_key=self.key, base_url=gw.base_url)


def _db_url(gw: Gateway) -> str:
    return gw.env.get("TUNEPIPE_DATABASE_URL") or f"sqlite:///{gw.home / 'tunepipe.db'}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = build_test_model(tmp_path_factory.mktemp("ft-base"), seed=3)
    return base, build_lora(base, tmp_path_factory.mktemp("ft-lora"), seed=4)


@pytest.fixture(scope="module")
def proj(gateway: Gateway, tiny: tuple[Path, Path]) -> Iterator[Project]:
    name = f"ft-{uuid.uuid4().hex[:8]}"
    keys = KEY_RE.findall(gateway.cli("projects", "create", name).stdout)
    assert len(keys) == 2
    base = f"ft-tiny-{uuid.uuid4().hex[:6]}"
    added = gateway.cli("base-models", "add", str(tiny[0]), "--name", base, check=False)
    assert added.returncode == 0, added.stdout + added.stderr
    db = Database(make_engine(_db_url(gateway)))
    project = db.run_sync(get_project, name)
    yield Project(name, project.id, keys[0], keys[1], db, base, tiny[0], tiny[1])
    db.dispose()


@pytest.fixture(scope="module", autouse=True)
def no_log_left_pending(gateway: Gateway) -> Iterator[None]:
    """Leave no call of this module waiting in the log writer: the next module's tests count
    what gets written (reading the latest call flushes the writer)."""
    yield
    gateway.latest()


def row(i: int, split: str, answer: str = "yes", **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": RULE},
            {"role": "user", "content": f"is the red car number {i} on the road"},
            {"role": "assistant", "content": answer},
        ],
        "split": split,
        **extra,
    }


def new_dataset(gw: Gateway, p: Project, train: int = 12, test: int = 2, **extra: Any) -> str:
    client = p.op(gw)
    ds = client.create_dataset(name=f"ft-ds-{uuid.uuid4().hex[:8]}")
    # Held-out rows differ only in an unseen number of the same shape (two digits).
    entries = [row(10 + i, "TRAIN", **extra) for i in range(train)]
    entries += [row(10 + train + i, "TEST") for i in range(test)]
    created = client.create_dataset_entries(dataset_id=ds.id, entries=entries)  # type: ignore[arg-type]
    assert created.entries_created == len(entries)
    return str(ds.id)


def add_rule(gw: Gateway, p: Project, dataset_id: str, text: str = RULE) -> str:
    with gw.http(p.key) as h:
        r = h.post(f"/datasets/{dataset_id}/pruning-rules", json={"textToMatch": text})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def openpipe_config(base: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "openpipe", "baseModel": base, **extra}


def slug() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


def api_error(call: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def deployed(
    p: Project,
    *,
    rules: tuple[str, ...] = (),
    default_temperature: float | None = None,
    status: str = "DEPLOYED",
    base: str | None = None,
) -> FineTune:
    """A model of ``p`` with the test's random adapter, written straight to the DB."""
    now = now_ms()
    ft = FineTune(
        id=uuid7(),
        project_id=p.id,
        slug=slug(),
        dataset_id=None,
        provider="openpipe",
        base_model=base or p.base,
        root_model=base or p.base,
        parent_id=None,
        status=status,
        error_message=None,
        description="built by the test",
        default_temperature=default_temperature,
        training_config={"provider": "openpipe", "baseModel": p.base},
        hyperparameters={"sft": {"enabled": True}},
        pruning_rule_ids=[],
        metrics={"test_rows": 0},
        train_rows=0,
        test_rows=0,
        created_at=now,
        updated_at=now,
        training_started_at=now,
        training_finished_at=now,
    )
    data, sha = fine_tune_files.pack(p.adapter_dir)

    def write(conn: Connection) -> None:
        ft_repo.create(conn, ft)
        ft_repo.save_artifact(conn, ft.id, fine_tune_files.ADAPTER, data, sha)
        rule_repo.copy_to_fine_tune(conn, p.id, ft.id, rules)

    p.db.run_sync(write)
    return ft


def chat(gw: Gateway, p: Project, model: str, messages: list[Any], **kw: Any) -> str:
    r = gw.client(p.key).chat.completions.create(model=model, messages=messages, max_tokens=16, **kw)
    return str(r.choices[0].message.content)


def wait_for_status(gw: Gateway, p: Project, model: str, done: set[str], timeout_s: float) -> list[str]:
    """Statuses seen while polling ``get_model`` until one in ``done``."""
    client = p.op(gw)
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get_model(model_slug=model).openpipe.status.value
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in done:
            return seen
        assert time.monotonic() < deadline, f"{model} still {status} after {timeout_s} s (seen {seen})"
        time.sleep(0.5)


# ---------------------------------------------------------------------- validation


def test_fine_tune_create_validation_errors(gateway: Gateway, proj: Project) -> None:
    client = proj.op(gateway)
    ds = new_dataset(gateway, proj)
    small = new_dataset(gateway, proj, train=3, test=0)
    foreign_rule = add_rule(gateway, proj, small, "not this dataset's")

    def create(**kw: Any) -> ApiError:
        args: dict[str, Any] = {
            "dataset_id": ds,
            "slug": slug(),
            "training_config": openpipe_config(proj.base),
        }
        return api_error(lambda: client.create_model(**{**args, **kw}))

    cases: list[tuple[ApiError, int, str, str]] = [
        (create(slug="not a slug!"), 400, "slug", "Slugs are"),
        (
            create(training_config={"provider": "openai", "baseModel": "gpt-4o-mini-2024-07-18"}),
            400,
            "trainingConfig.provider",
            '"openpipe"',
        ),
        (
            create(
                training_config=openpipe_config(proj.base, preference_hyperparameters={"training_beta": 0.2})
            ),
            400,
            "trainingConfig.preference_hyperparameters",
            "enable_preference_tuning is false",
        ),
        (
            create(
                training_config=openpipe_config(
                    proj.base, hyperparameters={"preference_tuning_training_beta": 0.2}
                )
            ),
            400,
            "trainingConfig.hyperparameters",
            "is_preference_tuning_enabled",
        ),
        (
            create(training_config=openpipe_config(proj.base, enable_sft=False)),
            400,
            "trainingConfig.enable_sft",
            "Nothing to train",
        ),
        (create(dataset_id="no-such-dataset"), 404, "datasetId", "No dataset"),
        (create(pruning_rule_ids=[foreign_rule]), 400, "pruningRuleIds", foreign_rule),
        (
            create(training_config=openpipe_config("no/such-model")),
            400,
            "trainingConfig.baseModel",
            proj.base,  # the message lists the registered base models
        ),
        (create(dataset_id=small), 400, "datasetId", "at least 10"),
        (
            create(training_config=openpipe_config(proj.base, enable_preference_tuning=True)),
            400,
            "trainingConfig.enable_preference_tuning",
            "rejected_message",
        ),
    ]
    for error, status, param, text in cases:
        body = error.body
        assert error.status_code == status, body
        assert body["error"]["param"] == param, body
        assert text in body["error"]["message"], body
        assert body["message"] == body["error"]["message"]
        assert body["code"] == ("NOT_FOUND" if status == 404 else "BAD_REQUEST")
    assert {m.id for m in client.list_models().data}.isdisjoint({"not a slug!"})


def test_fine_tune_create_duplicate_slug_and_unfinished_parent(gateway: Gateway, proj: Project) -> None:
    client = proj.op(gateway)
    ds = new_dataset(gateway, proj)
    name = slug()
    created = client.create_model(dataset_id=ds, slug=name, training_config=openpipe_config(proj.base))  # type: ignore[arg-type]
    try:
        assert created.id == name and created.object == "model"
        assert created.openpipe.status.value in ("PENDING", "QUEUED", "TRAINING")
        taken = api_error(
            lambda: client.create_model(dataset_id=ds, slug=name, training_config=openpipe_config(proj.base))  # type: ignore[arg-type]
        )
        assert taken.status_code == 409 and taken.body["error"]["code"] == "slug_taken"
        assert taken.body["error"]["param"] == "slug" and taken.body["code"] == "CONFLICT"
        child = api_error(
            lambda: client.create_model(dataset_id=ds, slug=slug(), training_config=openpipe_config(name))  # type: ignore[arg-type]
        )
        assert child.status_code == 400 and "not deployed" in child.body["error"]["message"]
    finally:
        client.delete_model(model_slug=name)


def test_fine_tune_read_only_key_cannot_create(gateway: Gateway, proj: Project) -> None:
    ds = new_dataset(gateway, proj)
    ro = OpenPipe(api_key=proj.read_only_key, base_url=gateway.base_url)
    error = api_error(
        lambda: ro.create_model(dataset_id=ds, slug=slug(), training_config=openpipe_config(proj.base))  # type: ignore[arg-type]
    )
    assert error.status_code == 403


# ---------------------------------------------------------------------- create, get, list, delete


def test_fine_tune_create_snapshots_pruned_rows_and_views(gateway: Gateway, proj: Project) -> None:
    client = proj.op(gateway)
    ds = new_dataset(gateway, proj)
    rule = add_rule(gateway, proj, ds)
    name = slug()
    created = client.create_model(
        dataset_id=ds,
        slug=name,
        pruning_rule_ids=[rule],
        default_temperature=0.3,
        training_config=openpipe_config(  # type: ignore[arg-type]
            proj.base, sft_hyperparameters={"num_epochs": 2, "learning_rate_multiplier": 3, "batch_size": 4}
        ),
    )
    try:
        assert created.openpipe.base_model == proj.base and created.openpipe.dataset_id == ds
        hyper = created.openpipe.hyperparameters or {}
        assert hyper["sft"]["num_epochs"] == 2 and hyper["sft"]["batch_size"] == 4
        assert hyper["sft"]["learning_rate"] == pytest.approx(6e-4)
        assert created.context_window == 512 and created.owned_by == proj.name
        assert created.pricing.chat_in == 0 and set(created.capabilities) == {"chat", "tools", "json"}
        got = client.get_model(model_slug=name)
        assert got.id == name and got.created.isdigit()
        assert client.get_model(model_slug=f"openpipe:{name}").id == name
        assert name in {m.id for m in client.list_models().data}
        with gateway.http(proj.key) as h:
            extras = h.get(f"/models/{name}").json()["tunepipe"]
        assert extras["trainRows"] == 12 and extras["testRows"] == 2
        assert extras["pruningRuleIds"] == [rule] and extras["defaultTemperature"] == 0.3

        ft = proj.db.run_sync(ft_repo.get_by_slug, proj.id, name)
        assert ft is not None
        train = [
            r for _, r in proj.db.run_sync(lambda conn: list(ft_repo.iter_entries(conn, ft.id, "TRAIN")))
        ]
        assert len(train) == 12
        # The system message was nothing but the rule: pruning dropped it; the output is intact.
        assert all(r["messages"][0]["role"] == "user" and RULE not in json.dumps(r) for r in train)
        assert all(r["output"] == {"role": "assistant", "content": "yes"} for r in train)
        assert proj.db.run_sync(rule_repo.texts_for_fine_tune, ft.id) == [RULE]
    finally:
        deleted = client.delete_model(model_slug=name)
    assert deleted.deleted is True and deleted.id == name
    assert api_error(lambda: client.get_model(model_slug=name)).status_code == 404
    assert api_error(lambda: client.delete_model(model_slug=name)).status_code == 404
    with gateway.http(proj.key) as h:
        assert h.get("/models/nul%00slug").status_code == 404
        assert h.get("/unstable/finetune/get", params={"id": "nul\x00id"}).status_code == 404


def test_fine_tune_cancel_a_waiting_model(gateway: Gateway, proj: Project) -> None:
    client = proj.op(gateway)
    ds = new_dataset(gateway, proj)
    name = slug()
    client.create_model(dataset_id=ds, slug=name, training_config=openpipe_config(proj.base))  # type: ignore[arg-type]
    try:
        with gateway.http(proj.key) as h:
            r = h.post(f"/models/{name}/cancel")
            assert r.status_code == 200, r.text
        assert wait_for_status(gateway, proj, name, {"ERROR", "DEPLOYED"}, 120)[-1] == "ERROR"
        model = client.get_model(model_slug=name)
        assert model.openpipe.error_message == "cancelled"
        with gateway.http(proj.key) as h:
            again = h.post(f"/models/{name}/cancel")
        assert again.status_code == 400 and again.json()["error"]["code"] == "not_cancellable"
    finally:
        client.delete_model(model_slug=name)


def test_fine_tune_unstable_routes(gateway: Gateway, proj: Project) -> None:
    api = proj.op(gateway).base_client
    ds = new_dataset(gateway, proj)
    name = slug()
    created = api.unstable_finetune_create(
        dataset_id=ds,
        slug=name,
        base_model=proj.base,
        overrides={"num_epochs": 1, "learning_rate_multiplier": 2},  # type: ignore[arg-type]
    )
    by_id = api.unstable_finetune_get(id=created.id)
    assert by_id.slug == name and by_id.base_model == proj.base and by_id.dataset_id == ds
    assert by_id.status.value in ("PENDING", "QUEUED", "TRAINING", "DEPLOYED")
    assert api.unstable_finetune_get(slug=name).id == created.id
    model = proj.op(gateway).get_model(model_slug=name)
    assert (model.openpipe.hyperparameters or {})["sft"]["num_epochs"] == 1
    assert api.unstable_finetune_delete(id=created.id).deleted.lower() == "true"
    assert api_error(lambda: api.unstable_finetune_get(id=created.id)).status_code == 404
    assert api_error(lambda: api.unstable_finetune_delete(slug=name)).status_code == 404


# ---------------------------------------------------------------------- serving (adapter built here)


def test_fine_tune_serving_applies_adapter_rules_and_logs(gateway: Gateway, proj: Project) -> None:
    ft = deployed(proj, rules=(RULE,))
    model = f"openpipe:{ft.slug}"
    question = {"role": "user", "content": "where is the big red house in london"}
    plain = chat(gateway, proj, model, [question], temperature=0)
    base = chat(gateway, proj, f"local:{proj.base}", [question], temperature=0)
    assert plain != base  # the adapter is applied
    # The rule's text is cut out (and the emptied system message dropped) before generating.
    assert chat(gateway, proj, model, [{"role": "system", "content": RULE}, question], temperature=0) == plain
    other = chat(gateway, proj, model, [{"role": "system", "content": "be a cat"}, question], temperature=0)
    assert other != plain  # a system message that is no rule does change the answer

    marker = f"logged-{uuid.uuid4().hex[:6]}"
    chat(gateway, proj, model, [{"role": "user", "content": marker}], temperature=0)
    deadline = time.monotonic() + 5
    while marker not in json.dumps((latest := gateway.latest(proj.key) or {}).get("reqPayload")):
        assert time.monotonic() < deadline, latest
        time.sleep(0.05)
    assert latest["statusCode"] == 200
    assert latest["reqPayload"]["model"] == model and latest["respPayload"]["model"] == model

    ids = {m.id for m in gateway.client(proj.key).models.list().data}
    assert ft.slug in ids and f"local:{proj.base}" in ids


def test_fine_tune_default_temperature_applies_when_request_sets_none(
    gateway: Gateway, proj: Project
) -> None:
    greedy = deployed(proj, default_temperature=0)
    model = f"openpipe:{greedy.slug}"
    message = [{"role": "user", "content": "the cat sat on a mat"}]
    first = chat(gateway, proj, model, message)
    assert first == chat(gateway, proj, model, message) == chat(gateway, proj, model, message, temperature=0)
    # The control: without a default the same adapter samples at temperature 1, and answers vary.
    sampled = f"openpipe:{deployed(proj).slug}"
    assert len({chat(gateway, proj, sampled, message) for _ in range(4)}) > 1


def test_fine_tune_not_deployed_or_deleted_is_not_served(gateway: Gateway, proj: Project) -> None:
    training = deployed(proj, status="TRAINING")
    with pytest.raises(openai.BadRequestError) as bad:
        chat(gateway, proj, f"openpipe:{training.slug}", [{"role": "user", "content": "yes"}])
    assert bad.value.code == "model_not_deployed" and "status TRAINING" in bad.value.message

    ft = deployed(proj)
    model = f"openpipe:{ft.slug}"
    assert chat(gateway, proj, model, [{"role": "user", "content": "yes"}], temperature=0) is not None
    # Another project cannot call it, and does not see it.
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert ft.slug not in {m.id for m in gateway.client().models.list().data}

    proj.op(gateway).delete_model(model_slug=ft.slug)
    with pytest.raises(openai.NotFoundError) as gone:
        chat(gateway, proj, model, [{"role": "user", "content": "yes"}])
    assert "does not exist" in gone.value.message


def test_fine_tune_delete_unloads_its_adapter_and_keeps_the_base_serving(
    gateway: Gateway, proj: Project
) -> None:
    solo = f"ft-solo-{uuid.uuid4().hex[:6]}"  # a base model no other test puts adapters on
    gateway.cli("base-models", "add", str(proj.base_dir), "--name", solo)
    first, second = deployed(proj, base=solo), deployed(proj, base=solo)
    question = [{"role": "user", "content": "alice is thirty and bob is forty"}]
    base_answer = chat(gateway, proj, f"local:{solo}", question, temperature=0)
    kept = chat(gateway, proj, f"openpipe:{second.slug}", question, temperature=0)
    chat(gateway, proj, f"openpipe:{first.slug}", question, temperature=0)
    proj.op(gateway).delete_model(model_slug=first.slug)  # one of two adapters: detached
    assert chat(gateway, proj, f"openpipe:{second.slug}", question, temperature=0) == kept
    proj.op(gateway).delete_model(model_slug=second.slug)  # the last one: the plain base is back
    assert chat(gateway, proj, f"local:{solo}", question, temperature=0) == base_answer


def test_fine_tune_adapter_download(gateway: Gateway, proj: Project) -> None:
    ft = deployed(proj)
    with gateway.http(proj.key) as h:
        r = h.get(f"/models/{ft.slug}/adapter")
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        names = set(tar.getnames())
        assert {"adapter_config.json", "adapter_model.safetensors"} <= names
        config = json.loads(tar.extractfile("adapter_config.json").read())  # type: ignore[union-attr]
    assert config["peft_type"] == "LORA"
    with gateway.http(proj.key) as h:
        assert h.get("/models/no-such-model/adapter").status_code == 404
        outputs = h.get(f"/models/{ft.slug}/test-outputs").json()
    assert outputs["object"] == "list" and outputs["data"] == [] and outputs["exact_match"] is None


def test_fine_tune_merged_weights_download(gateway: Gateway, proj: Project, tmp_path: Path) -> None:
    ft = deployed(proj)
    with gateway.http(proj.key) as h:
        r = h.get(f"/models/{ft.slug}/weights", params={"dtype": "fp16"}, timeout=120)
        assert r.status_code == 200, r.text
        assert h.get(f"/models/{ft.slug}/weights", params={"dtype": "int3"}).status_code == 400
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["dtype" if "dtype" in config else "torch_dtype"] == "float16"
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "tokenizer.json").is_file()


def test_fine_tune_cli_list_get_wait_download(gateway: Gateway, proj: Project, tmp_path: Path) -> None:
    ft = deployed(proj)
    listed = gateway.cli("models", "list", "--project", proj.name).stdout
    assert f"openpipe:{ft.slug}" in listed and "DEPLOYED" in listed
    got = json.loads(gateway.cli("models", "get", ft.slug, "--project", proj.name).stdout)
    assert got["id"] == ft.slug and got["openpipe"]["status"] == "DEPLOYED"
    assert gateway.cli("models", "wait", ft.slug, "--project", proj.name).returncode == 0
    out = tmp_path / "adapter"
    gateway.cli("models", "download", ft.slug, "--out", str(out), "--project", proj.name)
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    failed = deployed(proj, status="ERROR")
    assert gateway.cli("models", "wait", failed.slug, "--project", proj.name, check=False).returncode == 1
    gateway.cli("models", "delete", ft.slug, "--project", proj.name)
    assert proj.db.run_sync(ft_repo.get_by_slug, proj.id, ft.slug) is None


def test_fine_tune_models_list_parses_with_the_openpipe_sdk(gateway: Gateway, proj: Project) -> None:
    ft = deployed(proj)
    listed = proj.op(gateway).list_models().data
    ids = [m.id for m in listed]
    assert ids.index(ft.slug) < ids.index(f"local:{proj.base}")  # the project's models first
    mine = next(m for m in listed if m.id == ft.slug)
    assert mine.openpipe.status.value == "DEPLOYED" and mine.context_window == 512
    local = next(m for m in listed if m.id == f"local:{proj.base}")
    assert local.openpipe.hyperparameters is None and local.owned_by == "local"


# ---------------------------------------------------------------------- the real thing


@pytest.mark.slow
def test_fine_tune_lifecycle_trains_evaluates_and_serves(gateway: Gateway, proj: Project) -> None:
    client = proj.op(gateway)
    ds = new_dataset(gateway, proj, train=16, test=2)
    rule = add_rule(gateway, proj, ds)
    name = slug()
    created = client.create_model(
        dataset_id=ds,
        slug=name,
        pruning_rule_ids=[rule],
        default_temperature=0,
        training_config=openpipe_config(  # type: ignore[arg-type]
            proj.base, sft_hyperparameters={"num_epochs": 5, "learning_rate_multiplier": 50, "batch_size": 4}
        ),
    )
    assert created.openpipe.status.value in STATUSES
    seen = wait_for_status(gateway, proj, name, {"DEPLOYED", "ERROR"}, 300)
    model = client.get_model(model_slug=name)
    assert seen[-1] == "DEPLOYED", model.openpipe.error_message
    assert set(seen) <= STATUSES
    with gateway.http(proj.key) as h:
        extras = h.get(f"/models/{name}").json()["tunepipe"]
        outputs = h.get(f"/models/{name}/test-outputs").json()
    assert {"step", "total_steps", "loss"} <= set(extras["progress"])
    assert extras["trainingFinishedAt"] is not None
    # It learned: the held-out rows (unseen numbers) get the trained answer, exactly.
    assert len(outputs["data"]) == 2 and outputs["exact_match"] == 1.0
    assert all(o["output"]["content"] == "yes" and o["exact_match"] for o in outputs["data"])
    assert extras["metrics"]["test_exact_match"] == 1.0 and extras["metrics"]["test_errors"] == 0

    message = [{"role": "user", "content": "is the red car number 12 on the road"}]
    answer = chat(gateway, proj, f"openpipe:{name}", message)  # defaultTemperature 0: greedy
    assert answer == "yes"
    assert answer == chat(gateway, proj, f"openpipe:{name}", [{"role": "system", "content": RULE}, *message])
    assert name in {m.id for m in gateway.client(proj.key).models.list().data}

    # Continue from the deployed model with preference tuning only: "no" preferred over "yes".
    prefs = new_dataset(
        gateway, proj, train=12, test=0, rejected_message={"role": "assistant", "content": "yes"}
    )
    with gateway.http(proj.key) as h:
        for e in h.get(f"/datasets/{prefs}/entries", params={"limit": 100}).json()["data"]:
            r = h.patch(
                f"/datasets/{prefs}/entries/{e['id']}",
                json={"output": {"role": "assistant", "content": "no"}},
            )
            assert r.status_code == 200, r.text
    child = slug()
    client.create_model(
        dataset_id=prefs,
        slug=child,
        training_config=openpipe_config(  # type: ignore[arg-type]
            name,
            enable_sft=False,
            enable_preference_tuning=True,
            preference_hyperparameters={
                "num_epochs": 3,
                "learning_rate_multiplier": 20,
                "training_beta": 0.1,
            },
        ),
    )
    seen = wait_for_status(gateway, proj, child, {"DEPLOYED", "ERROR"}, 300)
    assert seen[-1] == "DEPLOYED", client.get_model(model_slug=child).openpipe.error_message
    with gateway.http(proj.key) as h:
        continued = h.get(f"/models/{child}").json()
    assert continued["openpipe"]["baseModel"] == name
    assert continued["tunepipe"]["parentId"] is not None and continued["tunepipe"]["rootModel"] == proj.base
    metrics = continued["tunepipe"]["metrics"]
    assert metrics["dpo_steps"] > 0 and "sft_steps" not in metrics
    assert metrics["dpo_reward_margin_last"] > metrics["dpo_reward_margin_first"], metrics

    client.delete_model(model_slug=name)
    with pytest.raises(openai.NotFoundError):
        chat(gateway, proj, f"openpipe:{name}", message)
