"""``GET /models``: what the calling project can put in ``model`` on ``/chat/completions``, in
OpenPipe's Model shape (the project's fine-tunes are covered in ``test_fine_tunes.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openai
import pytest
from openpipe.client import OpenPipe

from conftest import FakeProvider, Gateway


@pytest.fixture
def registered(gateway: Gateway, fake_provider: FakeProvider) -> Iterator[str]:
    """An external provider with two models; yields its slug."""
    slug = f"models-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        assert (
            h.post(
                "/external-providers", json={"slug": slug, "baseUrl": f"{fake_provider.url}/v1"}
            ).status_code
            == 201
        )
        for model in ("llama-3-8b", "qwen-7b"):
            assert h.post(f"/external-providers/{slug}/models", json={"slug": model}).status_code == 201
        try:
            yield slug
        finally:
            h.delete(f"/external-providers/{slug}")


def test_models_list_names_every_provider(gateway: Gateway, registered: str) -> None:
    page = gateway.client().models.list()
    models = {m.id: m for m in page.data}
    for expected in ("gpt-4o", "gpt-4o-mini", "anthropic:claude-3-5-sonnet", "gemini:gemini-2.0-flash"):
        assert expected in models, expected
    assert models["gpt-4o"].owned_by == "openai"
    assert models["anthropic:claude-3-5-sonnet"].owned_by == "anthropic"
    assert models[f"openpipe:{registered}/llama-3-8b"].owned_by == registered
    assert f"openpipe:{registered}/qwen-7b" in models
    assert all(m.object == "model" for m in page.data)
    assert not any(name.startswith("ft:") for name in models)


def test_models_listed_external_model_is_callable(gateway: Gateway, registered: str) -> None:
    client = gateway.client()
    model = next(m.id for m in client.models.list() if m.id.startswith(f"openpipe:{registered}/"))
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "listed"}])
    assert r.choices[0].message.content == "echo: listed"


def test_models_read_only_key_sees_no_plain_openai(gateway: Gateway, registered: str) -> None:
    models = list(gateway.client(gateway.read_only_key).models.list())
    ids = {m.id for m in models}
    # Unprefixed ids are plain OpenAI models, or the project's fine-tunes (listed by slug).
    assert "gpt-4o" not in ids and not any(":" not in m.id and m.owned_by == "openai" for m in models)
    assert "anthropic:claude-3-5-sonnet" in ids
    assert "gemini:gemini-2.0-flash" in ids
    assert f"openpipe:{registered}/llama-3-8b" in ids


def test_models_removed_provider_disappears(gateway: Gateway, fake_provider: FakeProvider) -> None:
    slug = f"brief-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        h.post("/external-providers", json={"slug": slug, "baseUrl": f"{fake_provider.url}/v1"})
        h.post(f"/external-providers/{slug}/models", json={"slug": "m"})
        assert f"openpipe:{slug}/m" in {m["id"] for m in h.get("/models").json()["data"]}
        h.delete(f"/external-providers/{slug}")
        assert f"openpipe:{slug}/m" not in {m["id"] for m in h.get("/models").json()["data"]}


def test_models_list_requires_a_key(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        gateway.client("opk_" + "0" * 42).models.list()


def test_models_list_items_parse_as_openpipe_models(gateway: Gateway, registered: str) -> None:
    listed = OpenPipe(api_key=gateway.key, base_url=gateway.base_url).list_models().data
    models = {m.id: m for m in listed}
    gpt = models["gpt-4o"]
    assert gpt.object == "model" and gpt.owned_by == "openai" and gpt.name == "gpt-4o"
    assert gpt.openpipe.status.value == "DEPLOYED" and gpt.openpipe.hyperparameters is None
    assert gpt.openpipe.base_model == "gpt-4o" and gpt.openpipe.dataset_id == ""
    assert gpt.pricing.chat_in == 2.5 and gpt.pricing.chat_out == 10.0
    assert gpt.created.isdigit() and set(gpt.capabilities) == {"chat", "tools", "json"}
    external = models[f"openpipe:{registered}/llama-3-8b"]
    assert external.owned_by == registered and external.pricing.chat_in == 0
