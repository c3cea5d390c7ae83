"""Base models as an installation sees them: ``/models`` and ``/base-models`` (list, add,
remove), and LoRA adapters served on top of a loaded base model, chosen per request."""

from __future__ import annotations

import concurrent.futures
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import Gateway
from engine.conftest import PROMPTS, Reference, user


def greedy(gateway: Gateway, model: str, prompt: str, max_tokens: int = 24) -> str:
    r = gateway.client().chat.completions.create(
        model=model,
        messages=user(prompt),
        temperature=0,
        max_tokens=max_tokens,
    )
    return str(r.choices[0].message.content)


def test_local_models_list_names_registered_models(local: Gateway) -> None:
    models = {m.id: m for m in local.client().models.list().data}
    assert models["local:tiny"].owned_by == "local"
    assert models["local:tiny-lora"].owned_by == "local"


def test_local_cli_lists_registered_models(local: Gateway, tiny_dir: Path) -> None:
    out = local.cli("base-models", "list").stdout
    assert "local:tiny" in out and "local:tiny-lora" in out


def test_local_base_models_rest_list(local: Gateway, tiny_dir: Path, lora_dir: Path) -> None:
    with local.http(local.admin_key) as h:
        r = h.get("/base-models")
    assert r.status_code == 200
    listed = {m["name"]: m for m in r.json()["data"]}
    assert listed["tiny"]["id"] == "local:tiny"
    assert listed["tiny"]["kind"] == "dir"
    assert listed["tiny"]["source"] == str(tiny_dir)
    assert listed["tiny-lora"]["kind"] == "lora"
    assert listed["tiny-lora"]["base"] == "tiny"
    for key in (local.key, local.read_only_key):  # a project sees names, never server paths
        with local.http(key) as h:
            r = h.get("/base-models")
        assert r.status_code == 200
        seen = {m["name"]: m for m in r.json()["data"]}
        assert seen["tiny-lora"] == {
            k: v for k, v in listed["tiny-lora"].items() if k not in ("source", "path")
        }
        assert str(tiny_dir) not in r.text and str(lora_dir) not in r.text


def test_local_base_models_rest_add_and_remove(local: Gateway, tiny_dir: Path, tiny_ref: Reference) -> None:
    name = f"tiny-copy-{uuid.uuid4().hex[:6]}"
    with local.http(local.admin_key) as h:
        r = h.post("/base-models", json={"source": str(tiny_dir), "name": name})
        assert r.status_code == 201, r.text
        assert r.json()["id"] == f"local:{name}"
        assert r.json()["kind"] == "dir"
        assert h.post("/base-models", json={"source": str(tiny_dir), "name": name}).status_code == 400
        assert name in {m["name"] for m in h.get("/base-models").json()["data"]}

        assert greedy(local, f"local:{name}", PROMPTS[0]) == tiny_ref.greedy(user(PROMPTS[0]), 24)

        r = h.delete(f"/base-models/{name}")
        assert r.status_code == 200
        assert r.json() == {"id": f"local:{name}", "deleted": True}
        assert name not in {m["name"] for m in h.get("/base-models").json()["data"]}
        assert h.delete(f"/base-models/{name}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        greedy(local, f"local:{name}", PROMPTS[0])
    # A directory the user registered is theirs: removing the model leaves it in place.
    assert (tiny_dir / "config.json").is_file()


def test_local_base_models_name_reused_for_another_model_serves_the_new_one(
    local: Gateway, tiny_dir: Path, other_tiny_dir: Path, tiny_ref: Reference, other_ref: Reference
) -> None:
    name = f"reused-{uuid.uuid4().hex[:6]}"
    with local.http(local.admin_key) as h:
        assert h.post("/base-models", json={"source": str(tiny_dir), "name": name}).status_code == 201
        assert greedy(local, f"local:{name}", PROMPTS[1]) == tiny_ref.greedy(user(PROMPTS[1]), 24)
        assert h.delete(f"/base-models/{name}").status_code == 200
        assert h.post("/base-models", json={"source": str(other_tiny_dir), "name": name}).status_code == 201
    expected = other_ref.greedy(user(PROMPTS[1]), 24)
    assert expected != tiny_ref.greedy(user(PROMPTS[1]), 24)
    assert greedy(local, f"local:{name}", PROMPTS[1]) == expected
    with local.http(local.admin_key) as h:
        assert h.delete(f"/base-models/{name}").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"source": "/no/such/dir"},
        {"source": "not a model"},
        {"source": "x", "unknown": 1},
        {"source": "/tmp", "name": "bad name!"},
    ],
)
def test_local_base_models_rest_add_rejects_bad_input(local: Gateway, body: dict[str, Any]) -> None:
    with local.http(local.admin_key) as h:
        r = h.post("/base-models", json=body)
    assert r.status_code in (400, 422), r.text
    assert "error" in r.json()


def test_local_base_models_rest_add_adapter_needs_a_registered_base(local: Gateway, lora_dir: Path) -> None:
    with local.http(local.admin_key) as h:
        r = h.post("/base-models", json={"source": str(lora_dir), "name": "orphan", "base": "no-such-base"})
        assert r.status_code == 400
        r = h.post("/base-models", json={"source": str(lora_dir), "name": "orphan2", "base": "tiny-lora"})
        assert r.status_code == 400


def test_local_base_models_rest_needs_an_admin_key(local: Gateway, tiny_dir: Path) -> None:
    for key in (local.key, local.read_only_key):
        with local.http(key) as h:
            assert h.post("/base-models", json={"source": str(tiny_dir), "name": "ro"}).status_code == 403
            assert h.delete("/base-models/tiny").status_code == 403
    with local.http() as h:
        assert "ro" not in {m["name"] for m in h.get("/base-models").json()["data"]}


def test_local_lora_adapter_matches_peft_generate(
    local: Gateway, tiny_ref: Reference, lora_ref: Reference
) -> None:
    for prompt in PROMPTS[:2]:
        adapted = lora_ref.greedy(user(prompt), 24)
        assert adapted != tiny_ref.greedy(user(prompt), 24)  # the adapter changes the model
        assert greedy(local, "local:tiny-lora", prompt) == adapted
        assert greedy(local, "local:tiny", prompt) == tiny_ref.greedy(user(prompt), 24)


def test_local_lora_and_base_requests_share_batches(
    local: Gateway, tiny_ref: Reference, lora_ref: Reference
) -> None:
    jobs = [("local:tiny-lora" if i % 2 else "local:tiny", PROMPTS[i]) for i in range(len(PROMPTS))]
    expected = [
        (lora_ref if model.endswith("lora") else tiny_ref).greedy(user(prompt), 24) for model, prompt in jobs
    ]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(lambda job: greedy(local, *job), jobs))
    assert got == expected


def test_local_adapter_name_reused_for_another_adapter_serves_the_new_one(
    local: Gateway, lora_dir: Path, other_lora_dir: Path, lora_ref: Reference, other_lora_ref: Reference
) -> None:
    name = f"relora-{uuid.uuid4().hex[:6]}"
    with local.http(local.admin_key) as h:
        assert (
            h.post("/base-models", json={"source": str(lora_dir), "name": name, "base": "tiny"}).status_code
            == 201
        )
        assert greedy(local, f"local:{name}", PROMPTS[2]) == lora_ref.greedy(user(PROMPTS[2]), 24)
        assert h.delete(f"/base-models/{name}").status_code == 200
        r = h.post("/base-models", json={"source": str(other_lora_dir), "name": name, "base": "tiny"})
        assert r.status_code == 201
    expected = other_lora_ref.greedy(user(PROMPTS[2]), 24)
    assert expected != lora_ref.greedy(user(PROMPTS[2]), 24)
    assert greedy(local, f"local:{name}", PROMPTS[2]) == expected
    with local.http(local.admin_key) as h:
        assert h.delete(f"/base-models/{name}").status_code == 200


def test_local_attaching_an_adapter_leaves_running_base_requests_exact(
    local: Gateway, tiny_dir: Path, lora_dir: Path, tiny_ref: Reference, lora_ref: Reference
) -> None:
    """The first request for an adapter loads it into the base model that other requests are
    decoding with at that moment; their output must not change."""
    suffix = uuid.uuid4().hex[:6]
    base, adapter = f"race-{suffix}", f"race-lora-{suffix}"
    with local.http(local.admin_key) as h:
        assert h.post("/base-models", json={"source": str(tiny_dir), "name": base}).status_code == 201
        assert (
            h.post("/base-models", json={"source": str(lora_dir), "name": adapter, "base": base}).status_code
            == 201
        )
    try:
        client = local.client()
        budget = 150
        stream = client.chat.completions.create(
            model=f"local:{base}", messages=user(PROMPTS[0]), temperature=0, max_tokens=budget, stream=True
        )
        text = ""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            adapted = None
            for chunk in stream:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
                if adapted is None and len(text) > 5:
                    adapted = pool.submit(greedy, local, f"local:{adapter}", PROMPTS[1])
            assert adapted is not None
            assert adapted.result() == lora_ref.greedy(user(PROMPTS[1]), 24)
        assert text == tiny_ref.greedy(user(PROMPTS[0]), budget)
    finally:
        with local.http(local.admin_key) as h:
            h.delete(f"/base-models/{adapter}")
            h.delete(f"/base-models/{base}")
