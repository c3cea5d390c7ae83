"""Pruning rules: exact-text removal in creation order, empty messages dropped, counts."""

from typing import Any

from tunepipe.domain.pruning import estimate_tokens, prune

SYSTEM = "You are a helpful assistant. Answer in JSON."


def test_prune_removes_every_occurrence_and_counts_matches() -> None:
    messages = [
        {"role": "system", "content": f"{SYSTEM} Be brief."},
        {"role": "user", "content": "hi hi and hi"},
    ]
    result = prune(messages, [SYSTEM, "hi"])
    assert result.messages == [
        {"role": "system", "content": " Be brief."},
        {"role": "user", "content": "  and "},
    ]
    assert [(r.text, r.matches) for r in result.rules] == [(SYSTEM, 1), ("hi", 3)]
    assert result.dropped == 0


def test_prune_later_rule_sees_earlier_rules_result() -> None:
    # "abXcd" -> rule "X" -> "abcd": the second rule only matches after the first ran.
    result = prune([{"role": "user", "content": "abXcd"}], ["X", "bc"])
    assert result.messages == [{"role": "user", "content": "ad"}]
    assert [r.matches for r in result.rules] == [1, 1]


def test_prune_order_matters() -> None:
    # The same rules the other way round: "bc" is not there yet when it runs.
    result = prune([{"role": "user", "content": "abXcd"}], ["bc", "X"])
    assert result.messages == [{"role": "user", "content": "abcd"}]
    assert [r.matches for r in result.rules] == [0, 1]


def test_prune_drops_messages_left_empty() -> None:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "question"},
    ]
    result = prune(messages, [SYSTEM])
    assert result.messages == [{"role": "user", "content": "question"}]
    assert result.dropped == 1


def test_prune_keeps_emptied_messages_with_tool_calls() -> None:
    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    messages = [
        {"role": "assistant", "content": "Calling the tool.", "tool_calls": call},
        {"role": "assistant", "content": "Calling the tool.", "function_call": {"name": "f"}},
    ]
    result = prune(messages, ["Calling the tool."])
    assert result.messages == [
        {"role": "assistant", "content": "", "tool_calls": call},
        {"role": "assistant", "content": "", "function_call": {"name": "f"}},
    ]
    assert result.dropped == 0


def test_prune_keeps_messages_that_were_empty_before() -> None:
    messages = [{"role": "user", "content": ""}, {"role": "assistant", "content": None}]
    assert prune(messages, ["x"]).messages == messages


def test_prune_array_content_prunes_each_text_part_and_keeps_images() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": SYSTEM}, image, {"type": "text", "text": f"Q? {SYSTEM}"}],
        }
    ]
    result = prune(messages, [SYSTEM])
    # The emptied text part goes; the image and the rest of the text stay.
    assert result.messages == [{"role": "user", "content": [image, {"type": "text", "text": "Q? "}]}]
    assert result.rules[0].matches == 2


def test_prune_array_content_left_without_parts_is_dropped() -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": "q"},
    ]
    result = prune(messages, [SYSTEM])
    assert result.messages == [{"role": "user", "content": "q"}]
    assert result.dropped == 1


def test_prune_does_not_modify_its_input() -> None:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "a boilerplate"}]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "a boilerplate"},
        {"role": "user", "content": parts},
    ]
    prune(messages, ["boilerplate"])
    assert messages == [
        {"role": "user", "content": "a boilerplate"},
        {"role": "user", "content": [{"type": "text", "text": "a boilerplate"}]},
    ]


def test_prune_tokens_saved_uses_the_given_tokenizer() -> None:
    messages = [{"role": "user", "content": "one two one two"}]
    result = prune(messages, ["one ", "two"], count_tokens=lambda s: len(s.split()))
    assert [(r.tokens_in_text, r.tokens_saved) for r in result.rules] == [(1, 2), (1, 2)]
    assert result.tokens_saved == 4


def test_prune_default_token_estimate_is_four_chars_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcdefgh") == 2
    assert estimate_tokens("abcdefghi") == 3
    result = prune([{"role": "user", "content": "x" * 8 + "y"}], ["x" * 8])
    assert (result.rules[0].tokens_in_text, result.rules[0].tokens_saved) == (2, 2)


def test_prune_empty_rule_matches_nothing() -> None:
    result = prune([{"role": "user", "content": "abc"}], [""])
    assert result.messages == [{"role": "user", "content": "abc"}]
    assert result.rules[0].matches == 0
