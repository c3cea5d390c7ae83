"""From ``train.jsonl`` rows to the token sequences SFT and DPO train on.

Training must show the model exactly what serving will: the prompt is rendered by
:func:`tunepipe.engine.chat_format.render_text`, the same code path ``render_prompt`` tokenizes
at inference (chat template, native or fallback tools, ``<tool_call>`` blocks), and the prompt
ids here *are* ``render_prompt``'s. The trained span is the rest of the full conversation's
render (prompt + answer), cut right after the template's end-of-turn marker so the model learns
to stop where the engine stops. A template that renders the prompt differently once an answer
follows (one that strips think blocks, say) breaks the prefix property; the answer is then
rendered on its own in the fallback form (text, ``<tool_call>`` blocks, end-of-turn marker).

Prompt and completion are tokenized separately and concatenated, as at inference (the prompt is
tokenized, the answer is generated token by token), rather than tokenizing their joined text,
where tokens can merge across the boundary. Rows longer than ``max_seq_len`` are dropped and
counted, never truncated: a truncated answer teaches the model to stop mid-sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tunepipe.engine.chat_format import render_prompt, render_text, to_template_messages
from tunepipe.errors import InvalidRequest

# End-of-turn markers of common chat templates; the tokenizer's EOS token is the last resort.
_TURN_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>")


@dataclass(frozen=True, slots=True)
class Row:
    """One training example: an OpenAI request, its answer, and optionally a worse answer."""

    body: dict[str, Any]  # messages, tools, tool_choice: what render_prompt gets
    output: dict[str, Any]
    rejected: dict[str, Any] | None


@dataclass(slots=True)
class Examples:
    """Tokenized examples, in the column layouts TRL's collators take."""

    sft: list[dict[str, list[int]]] = field(default_factory=list)  # input_ids, completion_mask
    dpo: list[dict[str, list[int]]] = field(default_factory=list)  # prompt_ids, chosen_ids, rejected_ids
    skipped_too_long: int = 0
    sft_tokens: int = 0
    dpo_tokens: int = 0


def read_rows(path: Path) -> list[Row]:
    """Parse ``train.jsonl``; raises :class:`InvalidRequest` naming the first bad line."""
    rows = []
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(_row(orjson.loads(line)))
            except (orjson.JSONDecodeError, InvalidRequest, TypeError, KeyError) as e:
                raise InvalidRequest(f"{path.name} line {number}: {e}") from e
    if not rows:
        raise InvalidRequest(f"{path.name} has no rows")
    return rows


def _row(value: Any) -> Row:
    if not isinstance(value, dict):
        raise InvalidRequest("a row must be a JSON object")
    messages, output = value.get("messages"), value.get("output")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list")
    for name, message in (("output", output), ("rejected_message", value.get("rejected_message"))):
        if message is not None and (not isinstance(message, dict) or message.get("role") != "assistant"):
            raise InvalidRequest(f"`{name}` must be an assistant message")
    if output is None:
        raise InvalidRequest("`output` is missing")
    body: dict[str, Any] = {"messages": messages}
    for key in ("tools", "tool_choice"):
        if value.get(key) is not None:
            body[key] = value[key]
    return Row(body=body, output=output, rejected=value.get("rejected_message"))


def end_of_turn(tokenizer: Any, text: str) -> str:
    """The marker that closes the assistant turn in ``text`` (a full render), or EOS."""
    found = [(text.rfind(m), m) for m in _TURN_MARKERS if m in tokenizer.get_vocab() and m in text]
    return max(found)[1] if found else str(tokenizer.eos_token)


def render_completion(tokenizer: Any, body: dict[str, Any], message: dict[str, Any], prompt: str) -> str:
    """The text the model should generate after ``prompt`` (the render of ``body``) to answer
    with ``message``, ending with the end-of-turn marker."""
    full = render_text(tokenizer, body, extra_messages=[message], add_generation_prompt=False)
    marker = end_of_turn(tokenizer, full)
    if full.startswith(prompt):
        completion = full[len(prompt) :]
        cut = completion.rfind(marker)
        if cut >= 0:
            return completion[: cut + len(marker)]
        return completion.rstrip() + marker
    return _fallback_answer(message) + marker


def _fallback_answer(message: dict[str, Any]) -> str:
    # The fallback tool format: text, then one <tool_call> block per call.
    return str(to_template_messages([message], native_tools=False)[0]["content"])


def render_row(tokenizer: Any, row: Row) -> tuple[str, str, str | None]:
    """(prompt, completion, rejected completion or None) as text, for tests and inspection."""
    prompt = render_text(tokenizer, row.body)
    completion = render_completion(tokenizer, row.body, row.output, prompt)
    rejected = None if row.rejected is None else render_completion(tokenizer, row.body, row.rejected, prompt)
    return prompt, completion, rejected


def tokenize_rows(tokenizer: Any, rows: Sequence[Row], max_seq_len: int, *, dpo: bool) -> Examples:
    """Render and tokenize every row; rows that do not fit ``max_seq_len`` are counted and left out."""
    out = Examples()
    for row in rows:
        prompt = render_text(tokenizer, row.body)
        prompt_ids = render_prompt(tokenizer, row.body)
        chosen = _ids(tokenizer, render_completion(tokenizer, row.body, row.output, prompt))
        rejected = None
        if row.rejected is not None:
            rejected = _ids(tokenizer, render_completion(tokenizer, row.body, row.rejected, prompt))
        fits = len(prompt_ids) + len(chosen) <= max_seq_len
        if fits:
            out.sft.append(
                {
                    "input_ids": prompt_ids + chosen,
                    "completion_mask": [0] * len(prompt_ids) + [1] * len(chosen),
                }
            )
            out.sft_tokens += len(prompt_ids) + len(chosen)
        if dpo and rejected is not None:
            fits = fits and len(prompt_ids) + len(rejected) <= max_seq_len
            if fits:
                out.dpo.append({"prompt_ids": prompt_ids, "chosen_ids": chosen, "rejected_ids": rejected})
                out.dpo_tokens += 2 * len(prompt_ids) + len(chosen) + len(rejected)
        if not fits:
            out.skipped_too_long += 1
    return out


def _ids(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
