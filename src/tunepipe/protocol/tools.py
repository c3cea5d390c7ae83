"""Tool features only OpenAI serves, as the other routes see them.

A chat body may carry custom tools (free-form input), custom tool calls in its history, a
custom tool choice, or ``tool_choice: {"type": "allowed_tools"}``. OpenAI and OpenAI-compatible
upstreams get the body as it came; the routes that translate tools themselves (the local engine,
Anthropic) narrow ``allowed_tools`` to a plain tool list and choice, and refuse the custom kind
with a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from tunepipe.errors import InvalidRequest


def _refuse(model: str, what: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"The model `{model}` cannot serve {what}: only function tools are supported on this route",
        param=param,
        code="unsupported_tool",
    )


def function_tools_only(body: dict[str, Any], model: str) -> dict[str, Any]:
    """``body`` with only function tools, ``allowed_tools`` applied; custom tools are refused.

    Raises:
        InvalidRequest: a custom tool, tool call or tool choice.
    """
    for i, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, dict) and tool.get("type", "function") != "function":
            raise _refuse(model, f"`{tool.get('type')}` tools", f"tools[{i}].type")
    for i, message in enumerate(body.get("messages") or []):
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for j, call in enumerate(calls or []):
            if isinstance(call, dict) and call.get("type", "function") != "function":
                raise _refuse(
                    model, f"`{call.get('type')}` tool calls", f"messages[{i}].tool_calls[{j}].type"
                )
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or choice.get("type", "function") == "function":
        return body
    if choice.get("type") != "allowed_tools":
        raise _refuse(model, f"a `{choice.get('type')}` tool choice", "tool_choice.type")
    allowed = choice.get("allowed_tools") or {}
    names = {
        (t.get("function") or {}).get("name")
        for t in allowed.get("tools") or []
        if isinstance(t, dict) and t.get("type", "function") == "function"
    }
    out = dict(body)
    out["tools"] = [t for t in body.get("tools") or [] if (t.get("function") or {}).get("name") in names]
    out["tool_choice"] = "required" if allowed.get("mode") == "required" else "auto"
    if not out["tools"]:
        out.pop("tools")
        out["tool_choice"] = "none"
    return out
