"""Hyperparameters a training run gets: OpenPipe's epoch rule, and early stopping only when the
caller chose no epochs and the dataset can spare a validation slice."""

from __future__ import annotations

from typing import Any

from tunepipe.domain.fine_tunes import EARLY_STOPPING, default_epochs, resolve_hyperparameters


def resolve(rows: int, sft: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return resolve_hyperparameters(
        enable_sft=True,
        enable_preference=False,
        sft=sft or {},
        preference={},
        train_rows=rows,
        preference_rows=0,
        **kw,
    )


def test_default_epochs_follow_openpipes_rule() -> None:
    assert [default_epochs(n) for n in (10, 1000, 2000, 10_000, 50_000)] == [10.0, 10.0, 5.0, 1.0, 1.0]


def test_defaults_stop_early_within_the_rules_epochs() -> None:
    sft = resolve(216)["sft"]
    assert sft["num_epochs"] == 10.0  # the upper bound
    assert sft["early_stopping"] == EARLY_STOPPING


def test_explicit_epochs_always_win() -> None:
    sft = resolve(216, {"num_epochs": 3})["sft"]
    assert (sft["num_epochs"], sft["early_stopping"]) == (3.0, None)
    # Other explicit settings keep early stopping on.
    assert resolve(216, {"learning_rate_multiplier": 2})["sft"]["early_stopping"] == EARLY_STOPPING


def test_no_early_stopping_for_a_small_dataset_or_when_the_operator_turns_it_off() -> None:
    assert resolve(39)["sft"]["early_stopping"] is None
    assert resolve(40)["sft"]["early_stopping"] is not None
    assert resolve(216, early_stopping=False)["sft"]["early_stopping"] is None
