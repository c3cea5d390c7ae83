"""OpenAI chat requests rewritten as Anthropic Messages requests.

Anthropic wants strictly alternating roles and a top-level system prompt, so system and
developer messages are hoisted, consecutive same-role messages are merged, and ``tool`` /
``function`` results become ``tool_result`` blocks of a user turn.

OpenAI-only knobs (``logprobs``, ``seed``, penalties, ``stream_options``, …) are dropped rather
than rejected, so a client can switch models without editing its request. ``n > 1`` is the
exception: silently returning one choice where several were asked for would be a wrong answer.
A few Anthropic-native options (``top_k``, ``thinking``) are passed through for clients that
know which model they are talking to.

``response_format`` has no Anthropic counterpart; it becomes an instruction appended to the
system prompt, which asks for JSON but, unlike OpenAI's structured outputs, cannot guarantee it.
"""

from __future__ import annotations

from typing import Any

import orjson

from tunepipe.errors import InvalidRequest
from tunepipe.protocol.tools import function_tools_only

JSON = dict[str, Any]

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires ``max_tokens``; OpenAI does not. Used when the client gave none."""

# Sent as given: the sampling knobs both APIs share, plus Anthropic-native extras.
_PASSTHROUGH = ("temperature", "top_p", "top_k", "stream", "thinking")


def to_anthropic_request(body: JSON) -> JSON:
    """Translate an OpenAI chat request (``model`` already Anthropic's name) to a Messages request.

    Raises:
        InvalidRequest: for what Anthropic cannot express (``n > 1``, malformed tool arguments,
            content parts it has no block for).
    """
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise InvalidRequest("Anthropic models do not support n > 1.", param="n")
    body = function_tools_only(body, str(body.get("model")))

    system: list[str] = []
    messages: list[JSON] = []
    pending_function_ids: dict[str, str] = {}
    for i, message in enumerate(body.get("messages") or []):
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), f"messages[{i}].content")
            if text:
                system.append(text)
            continue
        if role == "user":
            turn, blocks = "user", _user_blocks(message.get("content"), f"messages[{i}].content")
        elif role == "assistant":
            turn, blocks = "assistant", _assistant_blocks(message, i, pending_function_ids)
        elif role in ("tool", "function"):
            turn, blocks = "user", [_tool_result(message, i, pending_function_ids)]
        else:
            raise InvalidRequest(f"Unsupported message role: {role!r}.", param=f"messages[{i}].role")
        if not blocks:
            continue
        if messages and messages[-1]["role"] == turn:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": turn, "content": blocks})

    instruction = _json_instruction(body.get("response_format"))
    if instruction:
        system.append(instruction)

    out: JSON = {"model": body["model"], "messages": messages}
    if system:
        out["system"] = "\n\n".join(system)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = max_tokens if isinstance(max_tokens, int) else DEFAULT_MAX_TOKENS
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    out.update({key: body[key] for key in _PASSTHROUGH if body.get(key) is not None})
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    out.update(_tools_and_choice(body))
    return out


def _text_of(content: Any, param: str) -> str:
    """The text of a string or a list of text parts (system, developer and tool messages)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n\n".join(t for t in texts if t)
    raise InvalidRequest("Message content must be a string or a list of parts.", param=param)


def _user_blocks(content: Any, param: str) -> list[JSON]:
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("Message content must be a string or a list of parts.", param=param)
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append({"type": "image", "source": _image_source(url, f"{param}[{j}].image_url")})
        elif kind == "file":
            blocks.append(_document(part.get("file"), f"{param}[{j}].file"))
        else:
            raise InvalidRequest(f"Anthropic does not support {kind!r} content parts.", param=f"{param}[{j}]")
    return blocks


def _parse_data_url(url: str, param: str) -> tuple[str, str]:
    """(media_type, base64 data) of a ``data:<type>;base64,<data>`` URL."""
    header, sep, data = url.partition(",")
    media_type, _, encoding = header.removeprefix("data:").partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise InvalidRequest("Data URLs must have the form data:<media type>;base64,<data>.", param=param)
    return media_type, data


def _image_source(url: Any, param: str) -> JSON:
    if not isinstance(url, str) or not url:
        raise InvalidRequest("image_url.url must be a non-empty string.", param=param)
    if url.startswith("data:"):
        media_type, data = _parse_data_url(url, param)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise InvalidRequest("image_url.url must be an http(s) or data: URL.", param=param)


def _document(file: Any, param: str) -> JSON:
    """An OpenAI ``file`` part carrying inline data (e.g. a PDF) as an Anthropic document."""
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise InvalidRequest("Only file parts with inline file_data are supported.", param=param)
    media_type, data = _parse_data_url(data_url, param)
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _tool_input(arguments: Any, param: str) -> JSON:
    if arguments is None or arguments == "":
        return {}
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str | bytes) else arguments
    except orjson.JSONDecodeError:
        raise InvalidRequest("Tool call arguments must be valid JSON.", param=param) from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=param)
    return parsed


def _assistant_blocks(message: JSON, i: int, pending_function_ids: dict[str, str]) -> list[JSON]:
    content = message.get("content")
    blocks: list[JSON] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        # Assistant parts are text or refusal; both are plain text to Anthropic.
        for part in content:
            text = part.get("text") or part.get("refusal") if isinstance(part, dict) else None
            if text:
                blocks.append({"type": "text", "text": text})
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        param = f"messages[{i}].tool_calls[{j}].function.arguments"
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": _tool_input(function.get("arguments"), param),
            }
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        # Legacy function calls carry no id; invent one and let the next ``function`` message
        # with the same name answer it.
        call_id = f"toolu_legacy_{i}"
        pending_function_ids[legacy.get("name", "")] = call_id
        param = f"messages[{i}].function_call.arguments"
        blocks.append(
            {
                "type": "tool_use",
                "id": call_id,
                "name": legacy.get("name"),
                "input": _tool_input(legacy.get("arguments"), param),
            }
        )
    return blocks


def _tool_result(message: JSON, i: int, pending_function_ids: dict[str, str]) -> JSON:
    content = _text_of(message.get("content"), f"messages[{i}].content")
    if message.get("role") == "function":
        call_id = pending_function_ids.pop(message.get("name", ""), None)
        if call_id is None:
            raise InvalidRequest(
                "A function message must follow an assistant function_call of the same name.",
                param=f"messages[{i}].name",
            )
    else:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest("Tool messages need a tool_call_id.", param=f"messages[{i}].tool_call_id")
    result: JSON = {"type": "tool_result", "tool_use_id": call_id}
    if content:
        result["content"] = content
    return result


def _tool(function: JSON) -> JSON:
    tool: JSON = {"name": function.get("name")}
    if function.get("description"):
        tool["description"] = function["description"]
    tool["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return tool


def _tools_and_choice(body: JSON) -> JSON:
    """``tools``/``tool_choice`` (or the legacy ``functions``/``function_call``) for Anthropic."""
    if body.get("tools"):
        tools = [
            _tool(t.get("function") or {}) for t in body["tools"] if t.get("type", "function") == "function"
        ]
        choice = body.get("tool_choice")
    elif body.get("functions"):
        tools = [_tool(f) for f in body["functions"]]
        choice = body.get("function_call")
        if isinstance(choice, dict) and "name" in choice:
            choice = {"type": "function", "function": {"name": choice["name"]}}
    else:
        return {}
    out: JSON = {"tools": tools}
    if choice == "none":
        out["tool_choice"] = {"type": "none"}
        return out
    if choice == "required":
        anthropic_choice: JSON = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        anthropic_choice = {"type": "tool", "name": choice["function"].get("name")}
    else:
        anthropic_choice = {"type": "auto"}
    if body.get("parallel_tool_calls") is False:
        anthropic_choice["disable_parallel_tool_use"] = True
    if choice is not None or len(anthropic_choice) > 1:
        out["tool_choice"] = anthropic_choice
    return out


def _json_instruction(response_format: Any) -> str | None:
    """A system instruction standing in for ``response_format``, which Anthropic lacks.

    ``json_object`` asks for a bare JSON object; ``json_schema`` also spells out the schema.
    The model is asked, not constrained, so clients should still validate what comes back.
    """
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    base = (
        "Respond with a single valid JSON object and nothing else: "
        "no prose, no explanation, no Markdown code fences."
    )
    if kind == "json_object":
        return base
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = orjson.dumps(spec.get("schema") or {}).decode()
        return f"{base} The object must conform to this JSON Schema:\n{schema}"
    return None
