"""Pruning rules (spec B.11): static boilerplate cut out of input messages before training and
inference, to save input tokens.

The algorithm is OpenPipe's: rules apply one after another in creation order, each removing
every occurrence of its exact text (``str.replace(text, "")``) from every message's content, so a
later rule sees what the earlier ones left. Afterwards a message whose content pruning made
empty is dropped, unless it carries tool calls (``tool_calls`` or the legacy ``function_call``).

Array content (``[{"type": "text", "text": ...}, {"type": "image_url", ...}]``): OpenPipe joined
the text parts with newlines into one string before matching. Here each text part is pruned on
its own and the array keeps its shape, so images and other parts survive and the message stays
valid for the chat template. The one difference: a rule text that spans two parts (across the
joining newline) does not match. Text parts left empty are removed from the array; an array
left without parts counts as empty content.

Only messages pruning *made* empty are dropped: a message that arrived with empty content (an
assistant turn that only calls tools, say) is not the rules' business.

Pure: no I/O. Token savings use ``count_tokens`` so a caller can pass a real tokenizer; the
default is :func:`estimate_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]

CHARS_PER_TOKEN = 4
"""Roughly what BPE tokenizers average on English text (OpenAI's rule of thumb)."""


def estimate_tokens(text: str) -> int:
    """A cheap token estimate: one token per four characters, rounded up (0 for "")."""
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class PruningRule:
    """A rule of a dataset, or a fine-tune's own copy of one (``fine_tune_id`` set)."""

    id: str
    project_id: str
    dataset_id: str | None
    fine_tune_id: str | None
    text_to_match: str
    created_at: int


@dataclass(frozen=True, slots=True)
class RuleSavings:
    rule: PruningRule
    matches: int  # occurrences removed across the dataset's entries


@dataclass(frozen=True, slots=True)
class PruningReport:
    """What a dataset's rules do to its entries' inputs."""

    dataset_id: str
    entries: int
    entries_changed: int
    messages_dropped: int
    rules: list[RuleSavings]


@dataclass(frozen=True, slots=True)
class RuleEffect:
    """What one rule did to the messages it was applied to."""

    text: str
    matches: int  # occurrences removed
    tokens_in_text: int  # count_tokens(text), OpenPipe's ``tokensInText``
    tokens_saved: int  # matches * tokens_in_text


@dataclass(frozen=True, slots=True)
class Pruned:
    messages: list[Message]
    rules: tuple[RuleEffect, ...]  # one per rule, in the order given
    dropped: int  # messages removed because pruning left them empty

    @property
    def tokens_saved(self) -> int:
        return sum(r.tokens_saved for r in self.rules)


def _has_tool_calls(message: Mapping[str, Any]) -> bool:
    return bool(message.get("tool_calls")) or bool(message.get("function_call"))


def _is_empty(content: Any) -> bool:
    return content is None or content == "" or content == []


def _remove(content: Any, text: str) -> tuple[Any, int]:
    """``content`` with every occurrence of ``text`` removed, and how many there were."""
    if isinstance(content, str):
        found = content.count(text)
        return (content.replace(text, ""), found) if found else (content, 0)
    if not isinstance(content, list):
        return content, 0
    total = 0
    parts: list[Any] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            found = part["text"].count(text)
            if found:
                total += found
                part = {**part, "text": part["text"].replace(text, "")}
                if not part["text"]:
                    continue
        parts.append(part)
    return (parts, total) if total else (content, 0)


def prune(
    messages: Sequence[Mapping[str, Any]],
    rules: Sequence[str],
    *,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> Pruned:
    """Apply ``rules`` (texts, oldest first) to ``messages``; the input is not modified.

    Empty rule texts match nothing.
    """
    pruned: list[Message] = [dict(m) for m in messages]
    made_empty = [False] * len(pruned)
    effects: list[RuleEffect] = []
    for text in rules:
        matches = 0
        if text:
            for i, message in enumerate(pruned):
                content, found = _remove(message.get("content"), text)
                if found:
                    matches += found
                    message["content"] = content
                    made_empty[i] = _is_empty(content)
        size = count_tokens(text) if text else 0
        effects.append(
            RuleEffect(text=text, matches=matches, tokens_in_text=size, tokens_saved=matches * size)
        )
    kept = [m for m, empty in zip(pruned, made_empty, strict=True) if not empty or _has_tool_calls(m)]
    return Pruned(messages=kept, rules=tuple(effects), dropped=len(pruned) - len(kept))
