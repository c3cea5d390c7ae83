"""The JSON depth check agrees with the depth of the parsed value, strings and escapes included."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from tunepipe.domain.json_depth import check_depth, depth_exceeds, max_depth
from tunepipe.errors import JsonTooDeep

TRICKY_STRINGS = ["[[{", "]}]}", 'a"b', "back\\slash", '\\"[', "\\", "\\\\]", "x\n{", "é[ü"]


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def random_value(rng: random.Random, levels: int) -> Any:
    roll = rng.random()
    if levels == 0 or roll < 0.3:
        return rng.choice([*TRICKY_STRINGS, 1, 2.5, None, True])
    width = rng.randint(0, 3)
    if roll < 0.65:
        return [random_value(rng, levels - 1) for _ in range(width)]
    return {rng.choice(TRICKY_STRINGS) + str(i): random_value(rng, levels - 1) for i in range(width)}


def test_depth_exceeds_matches_parsed_depth() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = random_value(rng, rng.randint(0, 12))
        raw, actual = orjson.dumps(value), depth(value)
        for limit in range(0, 14):
            assert depth_exceeds(raw, limit) is (actual > limit), (raw, limit, actual)


@pytest.mark.parametrize("wide", [1, 500])
def test_depth_exceeds_at_the_limit(wide: int) -> None:
    for levels, expected in ((128, False), (129, True), (1024, True)):
        inner = b"[" * (levels - 1) + b"]" * (levels - 1)  # inside the outer object
        raw = b'{"a":[' + b",".join([b"[]"] * wide) + b'],"d":' + inner + b"}"
        assert levels > 200 or depth(orjson.loads(raw)) == levels
        assert depth_exceeds(raw, 128) is expected
        # Brackets inside strings never count.
        assert depth_exceeds(orjson.dumps({"text": "[" * 5000}), 128) is False


def test_check_depth_reads_the_limit_in_force() -> None:
    raw = b"[" * 20 + b"]" * 20
    check_depth(raw)
    token = max_depth.set(10)
    try:
        with pytest.raises(JsonTooDeep) as caught:
            check_depth(raw)
    finally:
        max_depth.reset(token)
    assert caught.value.status_code == 400
    assert caught.value.envelope()["error"]["code"] == "json_too_deep"
