"""What a dataset entry is, and the rules one must pass (OpenPipe's dataset format, spec D).

An entry arrives as a JSON object: ``messages`` ending with the assistant message that is the
training target, plus optional ``tools``, ``tool_choice``, ``response_format``,
``rejected_message``, ``split`` and string ``metadata``. The legacy forms are normalised here,
once, so nothing downstream sees them: ``functions``/``function_call`` become
``tools``/``tool_choice``, an assistant ``function_call`` becomes ``tool_calls`` (and the
``function`` messages answering it become ``tool`` messages), and ``{input, output}`` lines
become ``messages``.

The final assistant message is split off as the entry's *output*; the rest is its *input*,
hashed canonically (:func:`input_hash`). The split of an entry sent without one is a pure
function of that hash (:func:`assign_split`): deterministic, close to the dataset's ratio over
many entries, and identical inputs always land on the same side, so a duplicated prompt never
sits in both the training and the test set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

SPLITS = ("TRAIN", "TEST")
PROVENANCES = ("API", "UPLOAD", "REQUEST_LOG", "RELABELED_BY_MODEL", "RELABELED_BY_HUMAN")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
DEFAULT_TRAIN_RATIO = 0.9


class EntryInvalid(ValueError):
    """An entry breaks a rule; the message says which, in words a user can act on."""


@dataclass(frozen=True, slots=True)
class EntryData:
    """A valid, normalised entry."""

    messages: list[dict[str, Any]]  # the input: every message but the final assistant one
    output: dict[str, Any]  # the final assistant message
    tools: list[Any] | None = None
    tool_choice: Any = None
    response_format: Any = None
    rejected_message: dict[str, Any] | None = None
    split: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def input_hash(self) -> str:
        return input_hash(self.messages, self.tools, self.tool_choice, self.response_format)


def input_hash(messages: list[Any], tools: Any, tool_choice: Any, response_format: Any) -> str:
    """SHA-256 of the input in a canonical JSON form (sorted keys)."""
    canonical = orjson.dumps(
        {
            "messages": messages,
            "tools": tools or [],
            "tool_choice": tool_choice,
            "response_format": response_format,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def assign_split(entry_input_hash: str, train_ratio: float) -> str:
    """``TRAIN`` when the hash, read as a number in [0, 1), falls below ``train_ratio``."""
    point = int(entry_input_hash[:16], 16) / 2**64
    return "TRAIN" if point < train_ratio else "TEST"


def _tool_call_id(index: int) -> str:
    return f"call_{index}"


def _convert_legacy_messages(messages: list[Any]) -> list[Any]:
    """Assistant ``function_call`` → ``tool_calls``; the ``function`` reply → a ``tool`` message."""
    out: list[Any] = []
    pending: dict[str, str] = {}  # function name → the id given to its call
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(message)
            continue
        m = dict(message)
        call = m.get("function_call")
        if m.get("role") == "assistant" and isinstance(call, dict) and not m.get("tool_calls"):
            m.pop("function_call")
            call_id = _tool_call_id(i)
            if "arguments" not in call:
                raise EntryInvalid(f"messages[{i}].function_call must have `arguments`")
            m["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.get("name"), "arguments": call["arguments"]},
                }
            ]
            if isinstance(call.get("name"), str):
                pending[call["name"]] = call_id
        elif m.get("role") == "function" and isinstance(m.get("name"), str) and m["name"] in pending:
            m = {"role": "tool", "tool_call_id": pending.pop(m["name"]), "content": m.get("content")}
        elif m.get("role") == "assistant" and m.get("function_call") is None:
            m.pop("function_call", None)
        out.append(m)
    return out


def _convert_legacy_tools(raw: dict[str, Any]) -> tuple[Any, Any]:
    tools, tool_choice = raw.get("tools"), raw.get("tool_choice")
    functions, function_call = raw.get("functions"), raw.get("function_call")
    if tools is None and functions is not None:
        if not isinstance(functions, list):
            raise EntryInvalid("`functions` must be an array")
        tools = [{"type": "function", "function": f} for f in functions]
    if tool_choice is None and function_call is not None:
        if function_call in ("auto", "none"):
            tool_choice = function_call
        elif isinstance(function_call, dict) and isinstance(function_call.get("name"), str):
            tool_choice = {"type": "function", "function": {"name": function_call["name"]}}
        else:
            raise EntryInvalid('`function_call` must be "auto", "none" or {"name": …}')
    return tools, tool_choice


def _from_legacy_line(raw: dict[str, Any]) -> dict[str, Any]:
    """``{input: {messages, functions?, function_call?}, output, split?}`` → the current form."""
    inp = raw.get("input")
    if not isinstance(inp, dict):
        raise EntryInvalid("`input` must be an object")
    messages = inp.get("messages")
    if not isinstance(messages, list):
        raise EntryInvalid("`input.messages` must be an array")
    if not isinstance(raw.get("output"), dict):
        raise EntryInvalid("`output` must be an assistant message")
    converted = {k: v for k, v in raw.items() if k not in ("input", "output")}
    converted.update({k: v for k, v in inp.items() if k != "messages"})
    converted["messages"] = [*messages, raw["output"]]
    return converted


def _has_text(content: Any) -> bool:
    if isinstance(content, str):
        return content != ""
    return isinstance(content, list) and len(content) > 0


def _check_message(m: Any, where: str) -> None:
    if not isinstance(m, dict):
        raise EntryInvalid(f"{where} must be an object")
    role = m.get("role")
    if role not in ROLES:
        raise EntryInvalid(f"{where}.role must be one of {', '.join(ROLES)}")
    calls = m.get("tool_calls") or m.get("function_call")
    if role == "assistant":
        if m.get("content") is None and not calls:
            raise EntryInvalid(f"{where} needs `content` or `tool_calls`")
        if calls and _has_text(m.get("content")):
            raise EntryInvalid(f"{where} cannot combine text content with tool calls")
        tool_calls = m.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise EntryInvalid(f"{where}.tool_calls must be an array")
        for j, tc in enumerate(tool_calls or []):
            fn = tc.get("function") if isinstance(tc, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or "arguments" not in fn:
                raise EntryInvalid(f"{where}.tool_calls[{j}] needs `function` with `name` and `arguments`")
    elif m.get("content") is None:
        raise EntryInvalid(f"{where} needs `content`")
    if role == "tool" and not isinstance(m.get("tool_call_id"), str):
        raise EntryInvalid(f"{where} is a tool message and needs `tool_call_id`")
    if role == "function" and not isinstance(m.get("name"), str):
        raise EntryInvalid(f"{where} is a function message and needs `name`")


def check_assistant(message: Any, where: str) -> dict[str, Any]:
    """An assistant message (an output or a rejected message), legacy ``function_call`` converted."""
    if not isinstance(message, dict) or message.get("role") != "assistant":
        raise EntryInvalid(f"{where} must be an assistant message")
    converted = _convert_legacy_messages([message])[0]
    _check_message(converted, where)
    return dict(converted)


def check_split(split: Any) -> str | None:
    if split is not None and split not in SPLITS:
        raise EntryInvalid('`split` must be "TRAIN" or "TEST"')
    return None if split is None else str(split)


def check_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise EntryInvalid("`metadata` must be an object of strings")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise EntryInvalid(f"metadata value of {key!r} must be a string")
    return dict(metadata)


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Full ``messages`` (input + final assistant), legacy forms converted; returns them."""
    if not isinstance(messages, list) or not messages:
        raise EntryInvalid("`messages` must be a non-empty array")
    converted = _convert_legacy_messages(messages)
    for i, m in enumerate(converted):
        _check_message(m, f"messages[{i}]")
    checked: list[dict[str, Any]] = converted
    if checked[-1].get("role") != "assistant":
        raise EntryInvalid("the last message must be an assistant message (the training target)")
    return checked


def parse_entry(raw: Any) -> EntryData:
    """Validate and normalise one entry (an API entry or one JSONL line, already decoded).

    Raises:
        EntryInvalid: the first rule the entry breaks.
    """
    if not isinstance(raw, dict):
        raise EntryInvalid("an entry must be a JSON object")
    if not raw:
        raise EntryInvalid("empty row")
    if "messages" not in raw and "input" in raw:
        raw = _from_legacy_line(raw)
    messages = check_messages(raw.get("messages"))
    tools, tool_choice = _convert_legacy_tools(raw)
    if tools is not None and not isinstance(tools, list):
        raise EntryInvalid("`tools` must be an array")
    rejected = raw.get("rejected_message")
    return EntryData(
        messages=messages[:-1],
        output=messages[-1],
        tools=tools or None,
        tool_choice=tool_choice,
        response_format=raw.get("response_format"),
        rejected_message=check_assistant(rejected, "rejected_message") if rejected is not None else None,
        split=check_split(raw.get("split")),
        metadata=check_metadata(raw.get("metadata")),
    )


def export_line(entry: EntryData, *, include_split: bool) -> dict[str, Any]:
    """One line of the dataset export (spec D), re-importable as is."""
    line: dict[str, Any] = {"messages": [*entry.messages, entry.output]}
    if entry.tools:
        line["tools"] = entry.tools
    if entry.tool_choice is not None:
        line["tool_choice"] = entry.tool_choice
    if entry.response_format is not None:
        line["response_format"] = entry.response_format
    if entry.rejected_message is not None:
        line["rejected_message"] = entry.rejected_message
    if entry.metadata:
        line["metadata"] = entry.metadata
    if include_split and entry.split is not None:
        line["split"] = entry.split
    return line
