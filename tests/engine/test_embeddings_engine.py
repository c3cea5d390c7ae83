"""The local encoder engine in-process: what a model directory declares (pooling, normalisation,
length limit), pooled vectors against ``transformers`` computed directly, batching with padding,
and merged concurrent calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from engine.tiny import build_tiny_model
from engine.tiny_encoder import MAX_POSITIONS, build_tiny_encoder, reference_vectors
from tunepipe.engine.embeddings import (
    EmbeddingEngine,
    EmbeddingInputError,
    Head,
    embed_ids,
    is_embedding_dir,
    load_embedding_dir,
    read_head,
)

TEXTS = ["hello", "the cat sat on a mat", "where is the big red house in london", "yes no"]


def _close(a: list[float], b: list[float], tol: float = 1e-4) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(("pooling", "normalize"), [("mean", False), ("cls", True), ("max", False)])
def test_embeddings_engine_pooling_matches_transformers(
    tmp_path: Path, pooling: str, normalize: bool
) -> None:
    path = build_tiny_encoder(tmp_path / "m", pooling=pooling, normalize=normalize)
    assert read_head(path) == Head((pooling,), normalize, None)
    loaded = load_embedding_dir("m", path)
    # Different lengths in one batch: padding must not change any vector.
    vectors = embed_ids(loaded, loaded.token_ids(TEXTS), max_batch=3)
    for got, want in zip(
        vectors, reference_vectors(path, TEXTS, pooling=pooling, normalize=normalize), strict=True
    ):
        assert _close(got, want)
    if normalize:
        assert all(abs(sum(x * x for x in v) - 1.0) < 1e-5 for v in vectors)
    assert loaded.dimensions == len(vectors[0]) == 32


def test_embeddings_engine_defaults_to_mean_pooling_without_sentence_transformers_files(
    tmp_path: Path,
) -> None:
    path = build_tiny_encoder(tmp_path / "m")
    (path / "modules.json").unlink()
    assert is_embedding_dir(path)  # a BertModel is not generative
    assert read_head(path) == Head()
    loaded = load_embedding_dir("m", path)
    assert _close(embed_ids(loaded, loaded.token_ids(TEXTS[:1]))[0], reference_vectors(path, TEXTS[:1])[0])


def test_embeddings_engine_refuses_what_it_cannot_compute(tmp_path: Path) -> None:
    path = build_tiny_encoder(tmp_path / "m")
    modules = json.loads((path / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="Dense"):
        read_head(path)


def test_embeddings_engine_causal_models_are_not_encoders(tmp_path: Path) -> None:
    assert not is_embedding_dir(build_tiny_model(tmp_path / "causal"))


def test_embeddings_engine_length_limit_names_the_input(tmp_path: Path) -> None:
    loaded = load_embedding_dir("m", build_tiny_encoder(tmp_path / "m"))
    assert loaded.max_length == MAX_POSITIONS
    with pytest.raises(EmbeddingInputError) as info:
        loaded.token_ids(["hello", "cat " * MAX_POSITIONS])
    assert info.value.index == 1


def test_embeddings_engine_concurrent_calls_share_passes_and_get_their_own_rows(tmp_path: Path) -> None:
    path = build_tiny_encoder(tmp_path / "m")
    expected = reference_vectors(path, TEXTS)

    async def run() -> list[list[list[float]]]:
        engine = EmbeddingEngine(max_batch=4)
        try:
            loaded = await engine.model("m", path)
            assert await engine.model("m", path) is loaded
            ids = loaded.token_ids(TEXTS)
            calls = [engine.embed(loaded, [ids[i % 4], ids[(i + 1) % 4]]) for i in range(8)]
            return list(await asyncio.gather(*calls))
        finally:
            engine.close()

    for i, vectors in enumerate(asyncio.run(run())):
        assert _close(vectors[0], expected[i % 4]) and _close(vectors[1], expected[(i + 1) % 4])
