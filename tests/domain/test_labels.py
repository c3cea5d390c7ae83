"""Log labels: OpenPipe's tag rules (stringify, drop empty, sanitise names) and merge order."""

import pytest

from tunepipe.domain.labels import merge_labels, normalise_tags, parse_tags_header
from tunepipe.errors import InvalidRequest


def test_normalise_tags_stringifies_numbers_and_booleans() -> None:
    tags = normalise_tags({"count": 3, "ratio": 0.25, "ok": True, "bad": False, "name": "x"})
    assert tags == {"count": "3", "ratio": "0.25", "ok": "true", "bad": "false", "name": "x"}


def test_normalise_tags_drops_null_and_empty_values() -> None:
    assert normalise_tags({"gone": None, "empty": "", "kept": "v"}) == {"kept": "v"}


def test_normalise_tags_sanitises_names_to_openpipe_alphabet() -> None:
    tags = normalise_tags({"prompt id": "a", "$sdk.version": "5", "user/email@x": "b", "ünï": "c"})
    assert tags == {"prompt_id": "a", "$sdk.version": "5", "user_email_x": "b", "_n_": "c"}


def test_normalise_tags_keeps_zero_and_false_values() -> None:
    # Falsy but meaningful: only None and "" count as empty.
    assert normalise_tags({"n": 0, "flag": False}) == {"n": "0", "flag": "false"}


def test_parse_tags_header_absent_is_empty() -> None:
    assert parse_tags_header(None) == {}
    assert parse_tags_header("") == {}


def test_parse_tags_header_applies_tag_rules() -> None:
    header = '{"prompt_id": "classify", "attempt": 2, "$sdk": "python", "skip": null}'
    assert parse_tags_header(header) == {"prompt_id": "classify", "attempt": "2", "$sdk": "python"}


def test_parse_tags_header_invalid_json_is_bad_request() -> None:
    with pytest.raises(InvalidRequest, match="Failed to parse tags") as info:
        parse_tags_header("{not json")
    assert info.value.status_code == 400
    assert info.value.param == "op-tags"


def test_parse_tags_header_non_object_is_bad_request() -> None:
    with pytest.raises(InvalidRequest, match="Failed to parse tags"):
        parse_tags_header('["a", "b"]')


def test_merge_labels_metadata_wins_over_tags() -> None:
    merged = merge_labels({"prompt_id": "from-body"}, {"prompt_id": "from-header", "env": "prod"})
    assert merged == {"prompt_id": "from-body", "env": "prod"}


def test_merge_labels_later_tag_maps_win_over_earlier() -> None:
    assert merge_labels(None, {"a": "1", "b": "1"}, {"b": "2"}) == {"a": "1", "b": "2"}


def test_merge_labels_stringifies_non_string_metadata() -> None:
    assert merge_labels({"n": 5, "flag": True}) == {"n": "5", "flag": "true"}


def test_merge_labels_empty_inputs_give_empty_map() -> None:
    assert merge_labels(None) == {}
    assert merge_labels({}, {}) == {}
