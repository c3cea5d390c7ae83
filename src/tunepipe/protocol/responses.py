"""OpenAI's Responses API on the wire, and its translation to and from Chat Completions.

Every model tunepipe routes speaks chat completions, so a Responses call is answered by turning
its body into a chat body (:func:`chat_body`), running that through the chat pipeline, and
turning the chat completion back into a response object (:func:`response_object`). The
functions here are pure: ids and times are given, storage and I/O are the service's.

What does not translate is refused with a 400 naming the field (built-in tools such as
``web_search``, ``item_reference`` inputs, background mode) rather than silently dropped;
fields that only tune OpenAI's own service (``include``, ``truncation``, ``prompt_cache_key``)
are accepted and ignored. Reasoning items a client sends back are dropped: no chat model takes
them as input. Typed fields are strict, as chat's are (``"stream": "yes"`` is a 400).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.errors import InvalidRequest
from tunepipe.protocol.types import WholeNumber


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text", "json_schema", "json_object"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    summary: str | None = None


class ResponsesRequest(BaseModel):
    """``POST /responses``. Input items and tools are checked while they are translated, so
    that an error names the item (``input[2].content[0].type``)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str
    input: str | list[dict[str, Any]] = Field(default_factory=list)
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: WholeNumber | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    store: bool | None = None
    stream: bool | None = None
    background: bool | None = None


def new_id(prefix: str) -> str:
    """``resp_…``, ``msg_…``, ``fc_…``: OpenAI's prefixes over 48 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex}{uuid.uuid4().hex[:16]}"


# ---------------------------------------------------------------- request → chat


def _text_of(content: Any, param: str) -> str:
    """The text of a tool output or a text-only content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    raise InvalidRequest(f"`{param}` must be a string or a list of content parts", param=param)


def _chat_part(part: Any, param: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise InvalidRequest(f"`{param}` must be a content part object", param=param)
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        if not isinstance(part.get("text"), str):
            raise InvalidRequest(f"`{param}.text` must be a string", param=f"{param}.text")
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise InvalidRequest(
                f"`{param}.image_url` must be a URL or data URL (file ids are not supported)",
                param=f"{param}.image_url",
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("auto", "low", "high"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {k: part[k] for k in ("file_data", "file_id", "filename") if isinstance(part.get(k), str)}
        if "file_data" not in file and "file_id" not in file:
            raise InvalidRequest(f"`{param}` needs `file_data` or `file_id`", param=param)
        return {"type": "file", "file": file}
    if kind == "input_audio" and isinstance(part.get("input_audio"), dict):
        return {"type": "input_audio", "input_audio": part["input_audio"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "refusal", "refusal": part["refusal"]}
    raise InvalidRequest(f"`{param}.type` {kind!r} is not a supported content part", param=f"{param}.type")


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise InvalidRequest(
            f"`{param}.role` must be one of user, system, developer, assistant", param=f"{param}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(
            f"`{param}.content` must be a string or a list of content parts", param=f"{param}.content"
        )
    parts = [_chat_part(p, f"{param}.content[{i}]") for i, p in enumerate(content)]
    if role == "user":
        return {"role": role, "content": parts}
    # System, developer and assistant messages take text only (and an assistant a refusal).
    refusal = next((p["refusal"] for p in parts if p["type"] == "refusal"), None)
    if any(p["type"] not in ("text", "refusal") for p in parts):
        raise InvalidRequest(f"`{param}.content`: a {role} message takes text only", param=f"{param}.content")
    out: dict[str, Any] = {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    if refusal is not None:
        out["refusal"] = refusal
    return out


def _function_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    for key in ("call_id", "name", "arguments"):
        if not isinstance(item.get(key), str):
            raise InvalidRequest(f"`{param}.{key}` must be a string", param=f"{param}.{key}")
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }


def chat_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat messages an ``input`` stands for. Function calls join the assistant message
    before them (one assistant turn may say something and call tools), outputs become ``tool``
    messages."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        param = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, param))
        elif kind == "function_call":
            call = _function_call(item, param)
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
                if out[-1].get("content") == "":
                    out[-1]["content"] = None
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise InvalidRequest(f"`{param}.call_id` must be a string", param=f"{param}.call_id")
            output = _text_of(item.get("output"), f"{param}.output")
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        elif kind == "reasoning":
            continue
        else:
            raise InvalidRequest(
                f"`{param}.type` {kind!r} is not supported by tunepipe's Responses API for this model",
                param=f"{param}.type",
            )
    return out


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise InvalidRequest(
                f"`tools[{i}]`: only function tools (with a `name`) can be used with this model",
                param=f"tools[{i}].type",
            )
        fn: dict[str, Any] = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        out.append({"type": "function", "function": fn})
    return out


def chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest("`tool_choice` must be auto, none or required", param="tool_choice")
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("`tool_choice` may only name a function tool for this model", param="tool_choice")


def chat_response_format(fmt: TextFormat) -> dict[str, Any] | None:
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.type == "json_schema":
        if not fmt.name or fmt.schema_ is None:
            raise InvalidRequest(
                "`text.format` of type json_schema needs `name` and `schema`", param="text.format"
            )
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
        if fmt.description is not None:
            schema["description"] = fmt.description
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}
    return None


def chat_body(
    req: ResponsesRequest, history: list[dict[str, Any]], *, verbosity: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The chat body for ``req`` after ``history`` (the stored conversation it continues), and
    the messages its own input added. ``verbosity``: whether the route takes that field."""
    if req.background:
        raise InvalidRequest("Background responses are not supported", param="background")
    added = chat_messages(req.input)
    if not history and not added:
        raise InvalidRequest("`input` must not be empty", param="input")
    # Instructions never carry over from a previous response: they head this call only.
    head = [{"role": "system", "content": req.instructions}] if req.instructions else []
    body: dict[str, Any] = {"model": req.model, "messages": [*head, *history, *added]}
    if req.tools:
        body["tools"] = chat_tools(req.tools)
    if req.tool_choice is not None:
        body["tool_choice"] = chat_tool_choice(req.tool_choice)
    if req.text is not None and req.text.format is not None:
        fmt = chat_response_format(req.text.format)
        if fmt is not None:
            body["response_format"] = fmt
    if verbosity and req.text is not None and req.text.verbosity is not None:
        body["verbosity"] = req.text.verbosity
    if req.reasoning is not None and req.reasoning.effort is not None:
        body["reasoning_effort"] = req.reasoning.effort
    if req.max_output_tokens is not None:
        body["max_completion_tokens"] = req.max_output_tokens
    for key in ("temperature", "top_p", "metadata", "user"):
        if getattr(req, key) is not None:
            body[key] = getattr(req, key)
    if req.tools and req.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, added


def input_items(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input as ``GET /responses/{id}/input_items`` lists it: every item typed, with an id."""
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    out = []
    for item in items:
        kind = item.get("type", "message")
        listed = {"type": kind, **item}
        if kind == "message":
            listed.setdefault("status", "completed")
            if isinstance(item.get("content"), str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                listed["content"] = [{"type": part, "text": item["content"]}]
        listed.setdefault("id", new_id({"message": "msg", "function_call": "fc"}.get(kind, "item")))
        out.append(listed)
    return out


# ---------------------------------------------------------------- chat → response


def text_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def ending(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    """(status, incomplete_details) for a chat finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def output_of(completion: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The output items of a chat completion's first choice, and its finish reason."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    reason = choice.get("finish_reason")
    status = "incomplete" if ending(reason)[0] == "incomplete" else "completed"
    items: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str) and message["content"]:
        items.append(text_item(new_id("msg"), message["content"], status))
    elif isinstance(message.get("refusal"), str) and message["refusal"]:
        refusal = {"type": "refusal", "refusal": message["refusal"]}
        items.append({**text_item(new_id("msg"), "", status), "content": [refusal]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        items.append(
            call_item(
                new_id("fc"), call.get("id") or new_id("call"), fn.get("name", ""), fn.get("arguments", "")
            )
        )
    return items, reason


def usage_of(usage: Any) -> dict[str, Any] | None:
    """Chat usage in the Responses shape."""
    if not isinstance(usage, dict):
        return None
    prompt, output = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": int(usage.get("total_tokens") or prompt + output),
    }


def response_object(
    req: ResponsesRequest,
    *,
    response_id: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete_details: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The response object, echoing the request's settings as OpenAI does."""
    text = req.text.model_dump(by_alias=True, exclude_none=True) if req.text else {}
    text.setdefault("format", {"type": "text"})
    reasoning = req.reasoning.model_dump(exclude_none=True) if req.reasoning else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "model": req.model,
        "output": output,
        "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
        "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": req.store is not False,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "text": text,
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": req.tools or [],
        "top_p": req.top_p if req.top_p is not None else 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": req.user,
        "metadata": req.metadata or {},
    }


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chat assistant message that a response's output items stand for (the conversation a
    stored response keeps, and the log's view of a response)."""
    texts, calls = [], []
    for item in output:
        if item.get("type") == "message":
            texts += [p.get("text", "") for p in item.get("content") or [] if p.get("type") == "output_text"]
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")},
                }
            )
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_view(response: dict[str, Any]) -> dict[str, Any]:
    """A response object as a chat completion, for the log (tokens, cost, datasets)."""
    output = response.get("output") or []
    message = assistant_message(output) or {"role": "assistant", "content": ""}
    reason = "tool_calls" if message.get("tool_calls") else "stop"
    if (response.get("incomplete_details") or {}).get("reason") == "max_output_tokens":
        reason = "length"
    usage = response.get("usage") or {}
    view: dict[str, Any] = {
        "id": response.get("id"),
        "object": "chat.completion",
        "created": response.get("created_at"),
        "model": response.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": reason}],
    }
    if usage:
        view["usage"] = {
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
        }
    return view
