"""Rendering rows into prompt and completion: the trained text is what serving renders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from transformers import AutoTokenizer

from engine.tiny import build_tiny_model
from tunepipe.engine.chat_format import parse_tool_calls, render_prompt, render_text
from tunepipe.errors import InvalidRequest
from tunepipe.training.data import Row, read_rows, render_row, tokenize_rows
from tunepipe.training.sft import sft_dataset

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("tok")))


def _row(output: dict[str, Any], **extra: Any) -> Row:
    body = {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        **extra,
    }
    return Row(body=body, output=output, rejected=None)


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "call_1",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def test_render_row_prompt_plus_completion_is_full_render(tokenizer: Any) -> None:
    row = _row({"role": "assistant", "content": "the cat sat"})
    prompt, completion, _ = render_row(tokenizer, row)
    full = render_text(tokenizer, row.body, extra_messages=[row.output], add_generation_prompt=False)
    assert prompt == render_text(tokenizer, row.body)
    assert full.startswith(prompt + completion)
    assert completion == "the cat sat<|im_end|>"


def test_render_row_tool_call_in_fallback_form_parses_back(tokenizer: Any) -> None:
    call = _call("weather", {"city": "paris"})
    row = _row({"role": "assistant", "content": None, "tool_calls": [call]}, tools=[WEATHER])
    prompt, completion, _ = render_row(tokenizer, row)
    assert "You can call these functions" in prompt  # tools described in the system prompt
    assert completion.endswith("</tool_call><|im_end|>")
    content, calls = parse_tool_calls(completion.removesuffix("<|im_end|>"))
    assert content is None
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("weather", {"city": "paris"})
    ]


def test_tokenize_rows_prompt_ids_are_serving_ids(tokenizer: Any) -> None:
    row = _row({"role": "assistant", "content": "yes"}, tools=[WEATHER], tool_choice="auto")
    examples = tokenize_rows(tokenizer, [row], 512, dpo=False)
    (example,) = examples.sft
    prompt_ids = render_prompt(tokenizer, row.body)
    assert example["input_ids"][: len(prompt_ids)] == prompt_ids
    assert example["completion_mask"] == [0] * len(prompt_ids) + [1] * (
        len(example["input_ids"]) - len(prompt_ids)
    )
    assert tokenizer.decode(example["input_ids"][len(prompt_ids) :]) == "yes<|im_end|>"


def test_tokenize_rows_too_long_rows_skipped_and_counted(tokenizer: Any) -> None:
    short = _row({"role": "assistant", "content": "yes"})
    long = _row({"role": "assistant", "content": "the big dog ran " * 40})
    examples = tokenize_rows(tokenizer, [short, long, short], 64, dpo=False)
    assert len(examples.sft) == 2
    assert examples.skipped_too_long == 1


def test_sft_dataset_tool_args_with_different_keys_stay_as_written(tmp_path: Path, tokenizer: Any) -> None:
    rows = []
    for arguments in ({"city": "paris"}, {"country": "japan", "days": 3}):
        output = {"role": "assistant", "content": None, "tool_calls": [_call("weather", arguments)]}
        rows.append(
            {"messages": [{"role": "user", "content": "weather"}], "output": output, "tools": [WEATHER]}
        )
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    examples = tokenize_rows(tokenizer, read_rows(path), 512, dpo=False)
    table = sft_dataset(examples.sft)
    texts = [tokenizer.decode([t for t in labels if t != -100]) for labels in table["labels"]]
    parsed = [
        json.loads(parse_tool_calls(t.removesuffix("<|im_end|>"))[1][0]["function"]["arguments"])
        for t in texts
    ]
    assert parsed == [{"city": "paris"}, {"country": "japan", "days": 3}]  # no keys merged in as nulls


def test_read_rows_bad_line_names_it(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}], "output": {"role": "assistant", "content": "yo"}}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"messages": []}) + "\n")
    with pytest.raises(InvalidRequest, match="line 2"):
        read_rows(path)
