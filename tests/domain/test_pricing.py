"""List prices: longest-prefix matching, fine-tune prices, unknown models unpriced."""

import pytest

from tunepipe.domain.model_ref import RouteKind
from tunepipe.domain.pricing import Price, guess_price, listed_models, price_for


def test_price_cost_is_per_million_tokens() -> None:
    # gpt-4o: $2.50 in, $10.00 out per million tokens.
    assert Price(2.5, 10.0).cost(1_000_000, 0) == pytest.approx(2.5)
    assert Price(2.5, 10.0).cost(0, 1_000_000) == pytest.approx(10.0)
    assert Price(2.5, 10.0).cost(1200, 300) == pytest.approx((1200 * 2.5 + 300 * 10.0) / 1e6)
    assert Price(2.5, 10.0).cost(1200, 300) == pytest.approx(0.006)


def test_price_for_exact_name() -> None:
    assert price_for(RouteKind.OPENAI, "gpt-4o") == Price(2.5, 10.0)
    assert price_for(RouteKind.OPENAI, "gpt-4o-mini") == Price(0.15, 0.60)


def test_price_for_dated_name_takes_longest_listed_prefix() -> None:
    assert price_for(RouteKind.OPENAI, "gpt-4o-mini-2024-07-18") == Price(0.15, 0.60)
    assert price_for(RouteKind.OPENAI, "gpt-4o-2024-08-06") == Price(2.5, 10.0)
    # A dated snapshot with its own listed price beats the shorter family prefix.
    assert price_for(RouteKind.OPENAI, "gpt-4o-2024-05-13") == Price(5.0, 15.0)
    assert price_for(RouteKind.ANTHROPIC, "claude-3-5-sonnet-20241022") == Price(3.0, 15.0)
    assert price_for(RouteKind.GEMINI, "gemini-1.5-flash-8b-001") == Price(0.0375, 0.15)


def test_price_for_unknown_model_is_none() -> None:
    assert price_for(RouteKind.OPENAI, "my-local-llama") is None
    assert price_for(RouteKind.ANTHROPIC, "gpt-4o") is None
    assert price_for(RouteKind.EXTERNAL, "gpt-4o") is None
    assert price_for(RouteKind.FINE_TUNE, "gpt-4o") is None


def test_price_for_does_not_match_inside_a_version_number() -> None:
    # `gpt-4` is a listed prefix of the string `gpt-4.5-preview`, but not of the model.
    assert price_for(RouteKind.OPENAI, "gpt-4.5-preview") is None
    assert price_for(RouteKind.OPENAI, "gpt-4.1") == Price(2.0, 8.0)
    assert price_for(RouteKind.OPENAI, "gpt-4-0613") == Price(30.0, 60.0)


def test_price_for_openai_fine_tune_uses_ft_price() -> None:
    assert price_for(RouteKind.OPENAI, "ft:gpt-4o-mini-2024-07-18:acme::abc123") == Price(0.30, 1.20)
    assert price_for(RouteKind.OPENAI, "ft:gpt-4o-2024-08-06:acme:support:xyz") == Price(3.75, 15.0)
    assert price_for(RouteKind.OPENAI, "ft:gpt-3.5-turbo-0125:acme::q") == Price(3.0, 6.0)


def test_price_for_fine_tune_of_unlisted_base_is_none() -> None:
    assert price_for(RouteKind.OPENAI, "ft:davinci-002:acme::q") is None


def test_price_for_gemini_strips_models_prefix() -> None:
    assert price_for(RouteKind.GEMINI, "models/gemini-2.0-flash") == Price(0.10, 0.40)


def test_guess_price_honours_provider_prefix() -> None:
    assert guess_price("anthropic:claude-3-haiku-20240307") == Price(0.25, 1.25)
    assert guess_price("openai:gpt-4o") == Price(2.5, 10.0)
    assert guess_price("gemini:gemini-1.5-pro-002") == Price(1.25, 5.0)
    assert guess_price("openai:claude-3-haiku") is None


def test_guess_price_bare_name_searches_every_table() -> None:
    assert guess_price("gpt-4o") == Price(2.5, 10.0)
    assert guess_price("claude-3-opus-20240229") == Price(15.0, 75.0)
    assert guess_price("gemini-2.5-flash") == Price(0.30, 2.50)
    assert guess_price("openpipe:my-fine-tune") is None


def test_listed_models_excludes_fine_tune_entries() -> None:
    names = listed_models(RouteKind.OPENAI)
    assert "gpt-4o" in names
    assert not any(n.startswith("ft:") for n in names)
    assert listed_models(RouteKind.EXTERNAL) == []
