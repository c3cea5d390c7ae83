"""``POST /embeddings``: relayed to OpenAI and external providers (the fake), computed by a tiny
local encoder built here, refused with a 400 for models that cannot embed, logged without the
vectors, and scoped to the caller's project.

Driven with the official ``openai`` SDK (which asks for base64 unless told otherwise) against a
real ``tunepipe serve``.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import KEY_RE, FakeProvider, Gateway
from engine.tiny import build_tiny_model
from engine.tiny_encoder import MAX_POSITIONS, build_tiny_encoder, reference_vectors
from fakes.provider import fake_vector


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _labels(marker: str) -> dict[str, Any]:
    return {"metadata": {"t": marker}}


def wait_for_logs(
    gateway: Gateway, marker: str, key: str | None = None, count: int = 1
) -> list[dict[str, Any]]:
    """The logged calls labelled ``t=marker`` (bodies included), once ``count`` have arrived."""
    deadline = time.monotonic() + 10
    while True:
        with gateway.http(key) as h:
            r = h.get("/logs", params={"metadata.t": marker, "bodies": "true"})
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        if len(data) >= count:
            return data
        assert time.monotonic() < deadline, f"{len(data)} logs labelled {marker}"
        time.sleep(0.05)


def _close(a: list[float], b: list[float], tol: float = 1e-4) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _float32(vector: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


def _error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    assert body["message"] == body["error"]["message"]
    return dict(body["error"])


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("causal"))


def _register(gateway: Gateway, path: Path, name: str) -> None:
    with gateway.http(gateway.admin_key) as h:
        r = h.post("/base-models", json={"source": str(path), "name": name})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def encoder(gateway: Gateway, encoder_dir: Path) -> str:
    """The model name of the tiny encoder, registered on this gateway."""
    name = f"enc-{_tag()}"
    _register(gateway, encoder_dir, name)
    return f"local:{name}"


@pytest.fixture(scope="module")
def causal(gateway: Gateway, causal_dir: Path) -> str:
    name = f"causal-{_tag()}"
    _register(gateway, causal_dir, name)
    return f"local:{name}"


@pytest.fixture
def other_key(gateway: Gateway) -> str:
    return str(KEY_RE.findall(gateway.cli("projects", "create", f"emb-{_tag()}").stdout)[0])


@pytest.fixture
def external(gateway: Gateway, fake_provider: FakeProvider) -> Iterator[str]:
    """An external OpenAI-compatible provider on the fake, with one priced model ``m``."""
    slug = f"emb{_tag()}"
    with gateway.http() as h:
        r = h.post(
            "/external-providers",
            json={"slug": slug, "baseUrl": f"{fake_provider.url}/v1", "apiKey": "ext-key-123456789"},
        )
        assert r.status_code == 201, r.text
        r = h.post(f"/external-providers/{slug}/models", json={"slug": "m", "inputCostPerMillion": 2.0})
        assert r.status_code == 201, r.text
        try:
            yield slug
        finally:
            h.delete(f"/external-providers/{slug}")


# ---------------------------------------------------------------- relayed upstream


def test_embeddings_openai_float_relayed_and_logged_without_vectors(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    marker = _tag()
    texts = [f"alpha {marker}", "beta gamma delta"]
    r = gateway.client().embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float", extra_body=_labels(marker)
    )
    assert [d.index for d in r.data] == [0, 1]
    for d, text in zip(r.data, texts, strict=True):
        assert _close(d.embedding, fake_vector(text, 8))
    assert r.usage.prompt_tokens == 5
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/embeddings"
    assert upstream["body"]["model"] == "text-embedding-3-small"
    assert "metadata" not in upstream["body"]
    (logged,) = wait_for_logs(gateway, marker)
    assert logged["endpoint"] == "embeddings"
    assert logged["statusCode"] == 200
    assert logged["inputTokens"] == 5
    assert logged["cost"] == pytest.approx(5 * 0.02 / 1e6)  # OpenAI's price, input tokens only
    assert logged["reqPayload"]["input"] == texts
    assert logged["respPayload"]["data"] == []
    assert logged["respPayload"]["embeddings"] == {"count": 2, "dimensions": 8, "encoding": "float"}
    assert "alpha" not in str(logged["respPayload"]) and str(texts[1:]) not in str(logged["respPayload"])


def test_embeddings_openai_sdk_default_base64_is_decoded(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    text = f"base64 {_tag()}"
    r = gateway.client().embeddings.create(model="text-embedding-3-small", input=text)
    assert fake_provider.last()["body"]["encoding_format"] == "base64"
    assert r.data[0].embedding == _float32(fake_vector(text, 8))


def test_embeddings_v1_alias_forwards_dimensions(gateway: Gateway, fake_provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=f"{gateway.root}/v1", api_key=gateway.key, max_retries=0)
    r = client.embeddings.create(
        model="openai:text-embedding-3-large", input="short", dimensions=4, encoding_format="float"
    )
    assert len(r.data[0].embedding) == 4
    assert fake_provider.last()["body"] == {
        "model": "text-embedding-3-large",
        "input": "short",
        "dimensions": 4,
        "encoding_format": "float",
    }


def test_embeddings_external_provider_is_priced(
    gateway: Gateway, fake_provider: FakeProvider, external: str
) -> None:
    marker = _tag()
    r = gateway.client().embeddings.create(
        model=f"openpipe:{external}/m", input=["one two three", marker], extra_body=_labels(marker)
    )
    assert len(r.data) == 2
    upstream = fake_provider.last()
    assert upstream["body"]["model"] == "m"
    assert upstream["headers"]["Authorization"] == "Bearer ext-key-123456789"
    (logged,) = wait_for_logs(gateway, marker)
    assert logged["inputTokens"] == 4
    assert logged["cost"] == pytest.approx(4 * 2.0 / 1e6)
    assert logged["respPayload"]["embeddings"]["encoding"] == "base64"


def test_embeddings_upstream_error_keeps_its_status_and_is_logged(gateway: Gateway) -> None:
    marker = _tag()
    with pytest.raises(openai.UnprocessableEntityError):
        gateway.client().embeddings.create(model="fail-422", input="x", extra_body=_labels(marker))
    (logged,) = wait_for_logs(gateway, marker)
    assert logged["statusCode"] == 422 and logged["endpoint"] == "embeddings"


def test_embeddings_read_only_key_cannot_use_openai(gateway: Gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client(gateway.read_only_key).embeddings.create(model="text-embedding-3-small", input="x")


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize(
    "model",
    ["anthropic:claude-3-5-haiku-latest", "gemini:gemini-2.0-flash", "openpipe:some-fine-tune", "moa:gpt-4o"],
)
def test_embeddings_on_chat_only_model_is_400(gateway: Gateway, model: str) -> None:
    with gateway.http() as h:
        r = h.post("/embeddings", json={"model": model, "input": "hello"})
    assert r.status_code == 400, r.text
    err = _error(r)
    assert err["param"] == "model" and err["type"] == "invalid_request_error"
    assert model in err["message"] and "/embeddings" in err["message"]


def test_embeddings_on_local_causal_model_is_400(gateway: Gateway, causal: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().embeddings.create(model=causal, input="hello")
    assert info.value.param == "model"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": [[1, 2], []]}, "input"),
        ({"model": "text-embedding-3-small", "input": [{"text": "x"}]}, "input"),
        ({"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x"}, "model"),
        ({"model": "local:no-such-model", "input": "x"}, "model"),
    ],
)
def test_embeddings_bad_request_is_4xx_with_param(gateway: Gateway, body: dict[str, Any], param: str) -> None:
    with gateway.http() as h:
        r = h.post("/embeddings", json=body)
    assert r.status_code in (400, 404), r.text
    assert _error(r)["param"].split("[")[0] == param


def test_embeddings_body_that_is_not_json_is_400(gateway: Gateway) -> None:
    with gateway.http() as h:
        r = h.post("/embeddings", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "JSON" in _error(r)["message"]


# ---------------------------------------------------------------- a local encoder


TEXTS = ["the cat sat on a mat", "hello", "where is the red house in london and the big tree"]


def test_embeddings_local_mean_pooling_matches_transformers(
    gateway: Gateway, encoder: str, encoder_dir: Path
) -> None:
    r = gateway.client().embeddings.create(model=encoder, input=TEXTS, encoding_format="float")
    expected = reference_vectors(encoder_dir, TEXTS)
    assert r.model == encoder
    assert [d.index for d in r.data] == [0, 1, 2]
    for d, want in zip(r.data, expected, strict=True):
        assert _close(d.embedding, want), (d.embedding[:4], want[:4])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    assert r.usage.prompt_tokens == sum(len(tokenizer(t)["input_ids"]) for t in TEXTS)


def test_embeddings_local_base64_is_little_endian_float32(
    gateway: Gateway, encoder: str, encoder_dir: Path
) -> None:
    with gateway.http() as h:
        r = h.post("/embeddings", json={"model": encoder, "input": TEXTS[0], "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    vector = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert _close(vector, reference_vectors(encoder_dir, TEXTS[:1])[0])
    # The SDK's default (base64) decodes to the same floats as asking for floats.
    sdk = gateway.client().embeddings.create(model=encoder, input=TEXTS[0])
    assert sdk.data[0].embedding == vector


def test_embeddings_local_token_ids_embed_like_the_text(
    gateway: Gateway, encoder: str, encoder_dir: Path
) -> None:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(encoder_dir)(TEXTS[0])["input_ids"]
    client = gateway.client()
    by_ids = client.embeddings.create(model=encoder, input=[ids, ids[:3]], encoding_format="float")
    single = client.embeddings.create(model=encoder, input=ids, encoding_format="float")
    by_text = client.embeddings.create(model=encoder, input=TEXTS[0], encoding_format="float")
    assert _close(by_ids.data[0].embedding, by_text.data[0].embedding)
    assert _close(single.data[0].embedding, by_text.data[0].embedding)
    assert not _close(by_ids.data[1].embedding, by_text.data[0].embedding)
    assert by_ids.usage.prompt_tokens == len(ids) + 3


def test_embeddings_local_input_longer_than_the_model_is_400(gateway: Gateway, encoder: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().embeddings.create(model=encoder, input=["hello", "cat " * MAX_POSITIONS])
    assert info.value.param == "input"
    assert "Input 1" in str(info.value) and str(MAX_POSITIONS) in str(info.value)


def test_embeddings_local_token_ids_outside_the_vocabulary_are_400(gateway: Gateway, encoder: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().embeddings.create(model=encoder, input=[[2, 10_000_000, 3]])
    assert info.value.param == "input"


def test_embeddings_local_dimensions_other_than_the_models_are_400(gateway: Gateway, encoder: str) -> None:
    client = gateway.client()
    native = len(
        client.embeddings.create(model=encoder, input="hi", encoding_format="float").data[0].embedding
    )
    same = client.embeddings.create(model=encoder, input="hi", dimensions=native, encoding_format="float")
    assert len(same.data[0].embedding) == native
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=encoder, input="hi", dimensions=native // 2)
    assert info.value.param == "dimensions"


def test_embeddings_local_concurrent_calls_each_get_their_own_vectors(
    gateway: Gateway, encoder: str, encoder_dir: Path
) -> None:
    expected = reference_vectors(encoder_dir, TEXTS)

    async def run() -> list[Any]:
        async with openai.AsyncOpenAI(
            base_url=gateway.base_url, api_key=gateway.key, max_retries=0
        ) as client:
            calls = [
                client.embeddings.create(model=encoder, input=[TEXTS[i % 3], TEXTS[(i + 1) % 3]])
                for i in range(6)
            ]
            return list(await asyncio.gather(*calls))

    for i, r in enumerate(asyncio.run(run())):
        assert _close(r.data[0].embedding, expected[i % 3])
        assert _close(r.data[1].embedding, expected[(i + 1) % 3])


def test_embeddings_local_logged_for_its_project_only(gateway: Gateway, encoder: str, other_key: str) -> None:
    marker = _tag()
    r = gateway.client().embeddings.create(model=encoder, input=[marker, "hello"], extra_body=_labels(marker))
    (logged,) = wait_for_logs(gateway, marker)
    assert logged["endpoint"] == "embeddings" and logged["model"] == encoder
    assert logged["inputTokens"] == r.usage.prompt_tokens
    assert logged["respPayload"]["embeddings"]["count"] == 2
    with gateway.http(other_key) as h:
        theirs = h.get("/logs", params={"metadata.t": marker})
        assert theirs.status_code == 200 and theirs.json()["data"] == []
        assert h.get(f"/logs/{logged['id']}").status_code == 404
    # The other project can embed with the installation's local model, and sees only its call.
    gateway.client(other_key).embeddings.create(model=encoder, input=marker, extra_body=_labels(marker))
    (own,) = wait_for_logs(gateway, marker, key=other_key)
    assert own["id"] != logged["id"]
    assert [c["id"] for c in wait_for_logs(gateway, marker)] == [logged["id"]]
