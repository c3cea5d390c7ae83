"""Anthropic Messages requests rewritten as OpenAI chat requests, for ``/report-anthropic``.

A client that calls Anthropic directly can still log the call here; it is stored in OpenAI shape
so that logs, datasets and fine-tuning deal with one format only. The answer side reuses
:func:`tunepipe.providers.anthropic.response.to_openai_completion`.

This direction is lenient where :mod:`.request` is strict: the pair being reported already
went through Anthropic, so a block with no OpenAI counterpart (thinking, server tools, search
results) is left out rather than failing the report. ``metadata`` is Anthropic's per-request
user id, not content, and is left out too.
"""

from __future__ import annotations

from typing import Any

from tunepipe.providers.anthropic.response import openai_tool_call

JSON = dict[str, Any]

_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def from_anthropic_request(req: JSON) -> JSON:
    """Translate an Anthropic Messages request to the OpenAI chat request it stands for."""
    messages: list[JSON] = []
    system = _system_text(req.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in req.get("messages") or []:
        content = message.get("content")
        if message.get("role") == "assistant":
            messages.append(_assistant_message(content))
        else:
            messages.extend(_user_messages(content))

    out: JSON = {"model": req.get("model"), "messages": messages}
    for key in ("max_tokens", "temperature", "top_p"):
        if req.get(key) is not None:
            out[key] = req[key]
    if req.get("stop_sequences"):
        out["stop"] = list(req["stop_sequences"])
    tools = [_tool(t) for t in req.get("tools") or [] if t.get("type") in (None, "custom")]
    if tools:
        out["tools"] = tools
    out.update(_tool_choice(req.get("tool_choice")))
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, list):
        return "\n\n".join(b.get("text", "") for b in system if isinstance(b, dict) and b.get("text"))
    return system if isinstance(system, str) else ""


def _data_url(source: JSON) -> str | None:
    """The URL an OpenAI part uses for an Anthropic base64 or URL source."""
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if source.get("type") == "url":
        url = source.get("url")
        return url if isinstance(url, str) else None
    return None


def _part(block: JSON) -> JSON | None:
    kind = block.get("type")
    source = block.get("source") or {}
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image" and (url := _data_url(source)):
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "document" and source.get("type") == "base64" and (url := _data_url(source)):
        return {"type": "file", "file": {"file_data": url}}
    if kind == "document" and source.get("type") == "text":
        return {"type": "text", "text": source.get("data", "")}
    return None


def _tool_message(block: JSON) -> JSON:
    content = block.get("content")
    if isinstance(content, list):
        # OpenAI tool messages hold text only; images in a tool result have nowhere to go.
        content = [{"type": "text", "text": b.get("text", "")} for b in content if b.get("type") == "text"]
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": content or ""}


def _user_messages(content: Any) -> list[JSON]:
    """One user turn: its tool results as ``tool`` messages first (Anthropic puts them first and
    OpenAI needs them right after the assistant's calls), then the rest as one user message."""
    if not isinstance(content, list):
        return [{"role": "user", "content": content if isinstance(content, str) else ""}]
    out: list[JSON] = []
    parts: list[JSON] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            out.append(_tool_message(block))
        elif (part := _part(block)) is not None:
            parts.append(part)
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: Any) -> JSON:
    if not isinstance(content, list):
        return {"role": "assistant", "content": content if isinstance(content, str) else ""}
    texts: list[str] = []
    tool_calls: list[JSON] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            tool_calls.append(openai_tool_call(block))
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool(tool: JSON) -> JSON:
    function: JSON = {"name": tool.get("name")}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> JSON:
    if not isinstance(choice, dict):
        return {}
    out: JSON = {}
    kind = choice.get("type")
    if kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif kind in _TOOL_CHOICES:
        out["tool_choice"] = _TOOL_CHOICES[kind]
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out
