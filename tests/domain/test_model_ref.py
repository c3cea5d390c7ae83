"""Parsing the `model` field into a route, without I/O."""

import pytest

from tunepipe.domain.model_ref import ModelRef, RouteKind, parse_model
from tunepipe.errors import InvalidRequest


def test_parse_model_bare_name_is_plain_openai() -> None:
    ref = parse_model("gpt-4o")
    assert ref == ModelRef(RouteKind.OPENAI, "gpt-4o")
    assert ref.is_plain_openai
    assert not ref.prefixed


def test_parse_model_openai_fine_tune_id_is_plain_openai() -> None:
    ref = parse_model("ft:gpt-4o-mini-2024-07-18:acme::abc")
    assert ref.kind is RouteKind.OPENAI
    assert ref.name == "ft:gpt-4o-mini-2024-07-18:acme::abc"


@pytest.mark.parametrize(
    ("model", "kind", "name"),
    [
        ("openai:gpt-4o", RouteKind.OPENAI, "gpt-4o"),
        ("anthropic:claude-3-5-sonnet-20241022", RouteKind.ANTHROPIC, "claude-3-5-sonnet-20241022"),
        ("gemini:gemini-1.5-flash", RouteKind.GEMINI, "gemini-1.5-flash"),
        ("openpipe:support-bot-v3", RouteKind.FINE_TUNE, "support-bot-v3"),
    ],
)
def test_parse_model_prefix_selects_provider(model: str, kind: RouteKind, name: str) -> None:
    ref = parse_model(model)
    assert (ref.kind, ref.name, ref.prefixed) == (kind, name, True)
    assert ref.provider_slug is None


def test_parse_model_openpipe_local_is_a_local_model() -> None:
    ref = parse_model("openpipe:local/HuggingFaceTB/SmolLM2-135M-Instruct")
    assert ref == ModelRef(RouteKind.LOCAL, "HuggingFaceTB/SmolLM2-135M-Instruct", prefixed=True)
    assert parse_model("openpipe:local/tiny") == parse_model("local:tiny")
    with pytest.raises(InvalidRequest):
        parse_model("openpipe:local/")


def test_parse_model_openpipe_provider_slash_model_is_external() -> None:
    ref = parse_model("openpipe:custom-azure/gpt-4o-2024-08-06")
    assert ref == ModelRef(
        RouteKind.EXTERNAL, "gpt-4o-2024-08-06", provider_slug="custom-azure", prefixed=True
    )
    assert not ref.is_plain_openai


def test_parse_model_external_model_keeps_later_slashes() -> None:
    ref = parse_model("openpipe:together/meta-llama/Llama-3-8b")
    assert ref.provider_slug == "together"
    assert ref.name == "meta-llama/Llama-3-8b"


@pytest.mark.parametrize(
    "model", ["", "   ", "openai:", "anthropic:", "gemini:", "openpipe:", "openpipe:/m", "openpipe:p/"]
)
def test_parse_model_unusable_name_is_bad_request(model: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_model(model)
    assert info.value.status_code == 400
    assert info.value.param == "model"
