"""From OpenAI messages and tools to prompt tokens, and from generated text back to tool calls.

Prompts go through the model's own chat template. Tools are passed to the template when it
knows about them; otherwise they are described in the system prompt (the fallback format).
Either way the model is asked to answer a tool call as Hermes-style
``<tool_call>{"name": …, "arguments": {…}}</tool_call>``, which is what the parser reads (a
bare ``{"name", "arguments"}`` object is accepted too), and what the constrained tool grammar
enforces when ``tool_choice`` is ``required`` or names a function.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from tunepipe.errors import InvalidRequest

_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)

FALLBACK_TOOL_PROMPT = (
    "You can call these functions:\n{tools}\n\n"
    'To call a function, answer with only <tool_call>{{"name": <function name>, "arguments": '
    "<JSON object of arguments>}}</tool_call> (one such block per call)."
)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") == "text":
            parts.append(part.get("text", ""))
        elif part.get("type") == "refusal":
            parts.append(part.get("refusal", ""))
        else:
            raise InvalidRequest(
                f"Local models accept text only; got a `{part.get('type')}` content part", param="messages"
            )
    return "".join(parts)


def _tool_call_text(calls: list[dict[str, Any]]) -> str:
    blocks = []
    for call in calls:
        fn = call.get("function") or {}
        try:
            arguments = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = fn.get("arguments")
        payload = orjson.dumps({"name": fn.get("name"), "arguments": arguments}).decode()
        blocks.append(f"<tool_call>{payload}</tool_call>")
    return "\n".join(blocks)


def template_supports_tools(tokenizer: Any) -> bool:
    template = tokenizer.chat_template or ""
    return "tools" in template


def to_template_messages(messages: list[dict[str, Any]], *, native_tools: bool) -> list[dict[str, Any]]:
    """OpenAI messages as plain role/content dicts a chat template can render."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            calls = m.get("tool_calls") or [{"function": m["function_call"]}]
            if native_tools:
                structured = []
                for c in calls:
                    fn = c.get("function") or {}
                    try:
                        args: Any = orjson.loads(fn.get("arguments") or "{}")
                    except orjson.JSONDecodeError:
                        args = fn.get("arguments")
                    structured.append(
                        {"type": "function", "function": {"name": fn.get("name"), "arguments": args}}
                    )
                out.append(
                    {"role": "assistant", "content": _text(m.get("content")), "tool_calls": structured}
                )
            else:
                text = _text(m.get("content"))
                out.append(
                    {"role": "assistant", "content": (text + "\n" if text else "") + _tool_call_text(calls)}
                )
            continue
        if role in ("tool", "function"):
            content = _text(m.get("content"))
            if native_tools:
                out.append({"role": "tool", "content": content})
            else:
                out.append({"role": "user", "content": f"<tool_response>{content}</tool_response>"})
            continue
        out.append({"role": role, "content": _text(m.get("content"))})
    return out


def active_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools the model may call for this request (legacy ``functions`` included)."""
    tools = list(body.get("tools") or [])
    tools += [{"type": "function", "function": f} for f in body.get("functions") or []]
    choice = body.get("tool_choice", body.get("function_call"))
    if choice == "none" or not tools:
        return []
    return tools


def _template_inputs(
    tokenizer: Any, body: dict[str, Any], extra_messages: Sequence[dict[str, Any]] = ()
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The messages and keyword arguments ``apply_chat_template`` gets for ``body``."""
    tools = active_tools(body)
    native = template_supports_tools(tokenizer)
    messages = to_template_messages([*body["messages"], *extra_messages], native_tools=native)
    kwargs: dict[str, Any] = {}
    if tools and native:
        kwargs["tools"] = [t["function"] for t in tools]
    elif tools:
        described = "\n".join(orjson.dumps(t["function"]).decode() for t in tools)
        note = FALLBACK_TOOL_PROMPT.format(tools=described)
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + note}
        else:
            messages.insert(0, {"role": "system", "content": note})
    return messages, kwargs


def render_prompt(tokenizer: Any, body: dict[str, Any]) -> list[int]:
    messages, kwargs = _template_inputs(tokenizer, body)
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False, **kwargs
    )
    return [int(i) for i in ids]


def render_text(
    tokenizer: Any,
    body: dict[str, Any],
    *,
    extra_messages: Sequence[dict[str, Any]] = (),
    add_generation_prompt: bool = True,
) -> str:
    """The text :func:`render_prompt` tokenizes, optionally with more (OpenAI) messages appended.

    Training renders ``body`` alone (the prompt) and ``body`` plus the answer (the full sequence)
    through this one code path, so a fine-tune sees exactly what serving will show the model.

    Args:
        tokenizer: A tokenizer with a chat template.
        body: A chat request body (``messages``, and optionally ``tools`` / ``tool_choice``).
        extra_messages: OpenAI messages rendered after ``body["messages"]``.
        add_generation_prompt: Whether to end with the template's assistant header.

    Returns:
        The rendered text.
    """
    messages, kwargs = _template_inputs(tokenizer, body, extra_messages)
    text = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=False, **kwargs
    )
    return str(text)


def forced_tool_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a tool call must follow when ``tool_choice`` forces one, else None."""
    tools = active_tools(body)
    choice = body.get("tool_choice", body.get("function_call"))
    if not tools or choice in (None, "auto"):
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        tools = [t for t in tools if t["function"]["name"] == name]
        if not tools:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not in `tools`", param="tool_choice")
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": t["function"].get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def tool_call_grammar(schema: dict[str, Any]) -> str:
    """A Lark grammar (llguidance dialect) for one ``<tool_call>…</tool_call>`` block."""
    # Compact JSON, as for response_format: with flexible whitespace a weak model can pad the
    # call with whitespace until max_tokens and never finish it.
    compact = {**schema, "x-guidance": {"whitespace_flexible": False}}
    return f'start: "<tool_call>" call "</tool_call>"\ncall: %json {orjson.dumps(compact).decode()}\n'


def parse_tool_calls(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """Split generated text into (content, tool_calls); content is None when only calls remain."""
    payloads = _TOOL_CALL.findall(text)
    rest = _TOOL_CALL.sub("", text).strip()
    if not payloads:
        stripped = text.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            payloads, rest = [stripped], ""
    calls = []
    for payload in payloads:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            continue
        arguments = value.get("arguments", value.get("parameters", {}))
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": value["name"], "arguments": orjson.dumps(arguments).decode()},
            }
        )
    if not calls:
        return text, []
    return (rest or None), calls
