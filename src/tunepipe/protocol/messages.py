"""Anthropic's Messages API as tunepipe serves it: the request, its translation to a chat
request, and Anthropic's error body.

Validation only, as for chat: a request that passes is translated from the caller's own JSON,
and unknown fields are kept by the models (a field the translation does not use is dropped, one
the Anthropic upstream knows is still sent to it, since ``anthropic:`` models get the caller's
body as sent). The answer's side is :mod:`tunepipe.protocol.messages_response`. Typed fields are
strict, as chat's are (``"max_tokens": "10"`` is a 400 naming ``max_tokens``).

The translation is strict where the lenient one for ``/report-anthropic`` is not: a block with
no chat counterpart (a server tool, a document in an assistant turn) is a 400 naming it rather
than content silently left out, because here the model is about to answer on the strength of it.
``thinking`` blocks are the exception: they are the model's own notes of an earlier turn, which a
chat model cannot read back, and dropping them is what Anthropic itself does for older turns.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunepipe.errors import InvalidRequest, TunepipeError, UpstreamError, trpc_code
from tunepipe.protocol.params import param_of
from tunepipe.protocol.types import WholeNumber

JSON = dict[str, Any]
M = TypeVar("M", bound=BaseModel)

MAX_CHAT_STOPS = 4
"""Chat completions take at most four stop sequences; Anthropic takes more."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Base64Source(_Open):
    type: Literal["base64"]
    media_type: str
    data: str


class UrlSource(_Open):
    type: Literal["url"]
    url: str


class TextSource(_Open):
    type: Literal["text"]
    media_type: str | None = None
    data: str


ImageSource = Annotated[Base64Source | UrlSource, Field(discriminator="type")]
DocumentSource = Annotated[Base64Source | UrlSource | TextSource, Field(discriminator="type")]


class TextBlock(_Open):
    type: Literal["text"]
    text: str


class ImageBlock(_Open):
    type: Literal["image"]
    source: ImageSource


class DocumentBlock(_Open):
    type: Literal["document"]
    source: DocumentSource


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


ToolResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ToolResultPart] = ""
    is_error: bool | None = None


class ThinkingBlock(_Open):
    type: Literal["thinking"]
    thinking: str = ""


class RedactedThinkingBlock(_Open):
    type: Literal["redacted_thinking"]


Block = Annotated[
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class InputMessage(_Open):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolDef(_Open):
    name: str = Field(min_length=1)
    type: str | None = None  # None or "custom": a function; anything else is a server tool
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoiceAuto(_Open):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Open):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Open):
    type: Literal["tool"]
    name: str = Field(min_length=1)
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Open):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]


class Metadata(_Open):
    user_id: str | None = None


class MessagesRequest(_Open):
    model: str = Field(min_length=1)
    max_tokens: WholeNumber = Field(ge=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: WholeNumber | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None


class CountTokensRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None


def parse_request(model: type[M], body: Any) -> M:
    """Validate ``body``; a failure is a 400 naming the most specific offending field.

    Raises:
        InvalidRequest: with Anthropic's wording for a missing field (``max_tokens: Field
            required``).
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        found = [(param_of(err["loc"], body), err) for err in exc.errors(include_url=False)]
        param, err = max(found, key=lambda p: len(p[0]))
        message = err["msg"]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            param = f"{param}.type" if param else "type"
            message = (
                f"unsupported type {err['input'].get('type')!r}"
                if isinstance(err["input"], dict)
                else message
            )
        raise InvalidRequest(f"{param}: {message}" if param else message, param=param or None) from exc


# ------------------------------------------------------------------ request → chat request


def _refused(param: str, message: str) -> InvalidRequest:
    """What a chat model cannot be asked, worded as a validation error is."""
    return InvalidRequest(f"{param}: {message}", param=param)


def _system_text(system: str | list[TextBlock] | None) -> str:
    if isinstance(system, list):
        return "\n\n".join(block.text for block in system if block.text)
    return system or ""


def _url(source: Base64Source | UrlSource | TextSource) -> str:
    if isinstance(source, Base64Source):
        return f"data:{source.media_type};base64,{source.data}"
    if isinstance(source, UrlSource):
        return source.url
    raise AssertionError("text sources have no URL")


def _user_part(block: Any, param: str) -> JSON:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        return {"type": "image_url", "image_url": {"url": _url(block.source)}}
    if isinstance(block, DocumentBlock):
        if isinstance(block.source, TextSource):
            return {"type": "text", "text": block.source.data}
        if isinstance(block.source, Base64Source):
            return {"type": "file", "file": {"file_data": _url(block.source)}}
        raise _refused(f"{param}.source", "documents by URL reach anthropic: models only; send base64")
    raise _refused(f"{param}.type", f"a user turn cannot contain a {block.type} block")


def _tool_messages(block: ToolResultBlock, param: str) -> list[JSON]:
    """A ``tool_result`` as a ``tool`` message; its images, which a tool message cannot hold,
    follow in a user message of their own."""
    if isinstance(block.content, str):
        text, images = block.content, []
    else:
        text = "".join(p.text for p in block.content if isinstance(p, TextBlock))
        images = [_user_part(p, param) for p in block.content if isinstance(p, ImageBlock)]
    if block.is_error:
        # Chat has no error flag on a tool result: say it in the text the model reads.
        text = f"Error: {text}" if text else "Error"
    out: list[JSON] = [{"role": "tool", "tool_call_id": block.tool_use_id, "content": text}]
    if images:
        out.append({"role": "user", "content": images})
    return out


def _user_messages(content: str | list[Any], param: str) -> list[JSON]:
    """One user turn: its tool results first (chat wants them right after the assistant's
    calls; Anthropic puts them first in the turn), then the rest as one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[JSON] = []
    parts: list[JSON] = []
    for j, block in enumerate(content):
        where = f"{param}[{j}]"
        if isinstance(block, ToolResultBlock):
            results.extend(_tool_messages(block, where))
        elif not isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            parts.append(_user_part(block, where))
    tail = [{"role": "user", "content": parts}] if parts else []
    return results + tail


def _assistant_message(content: str | list[Any], param: str) -> JSON | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[JSON] = []
    for j, block in enumerate(content):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = orjson.dumps(block.input).decode()
            calls.append(
                {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}}
            )
        elif not isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            raise _refused(f"{param}[{j}].type", f"an assistant turn cannot contain a {block.type} block")
    if not texts and not calls:
        return None  # only thinking: nothing a chat model can read
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(tools: list[ToolDef]) -> list[JSON]:
    out: list[JSON] = []
    for i, tool in enumerate(tools):
        if tool.type not in (None, "custom"):
            raise _refused(f"tools[{i}].type", f"server tool {tool.type!r} is for anthropic: models only")
        function: JSON = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.input_schema or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> JSON:
    out: JSON = {}
    if isinstance(choice, ToolChoiceNone):
        return {"tool_choice": "none"}
    if isinstance(choice, ToolChoiceAuto):
        out["tool_choice"] = "auto"
    elif isinstance(choice, ToolChoiceAny):
        out["tool_choice"] = "required"
    elif isinstance(choice, ToolChoiceTool):
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    if getattr(choice, "disable_parallel_tool_use", None):
        out["parallel_tool_calls"] = False
    return out


def to_chat_request(req: MessagesRequest, *, top_k: bool, max_tokens_field: str = "max_tokens") -> JSON:
    """The chat-completions body that asks what ``req`` asks.

    Args:
        top_k: pass ``top_k`` on (only some chat upstreams take it).
        max_tokens_field: ``max_tokens`` or ``max_completion_tokens`` (OpenAI's reasoning
            models refuse the former).

    Raises:
        InvalidRequest: for what a chat model cannot be asked (server tools, more than four
            stop sequences, a tool use in a user turn).
    """
    messages: list[JSON] = []
    system = _system_text(req.system)
    if system:
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(req.messages):
        param = f"messages[{i}].content"
        if message.role == "user":
            messages.extend(_user_messages(message.content, param))
        elif (assistant := _assistant_message(message.content, param)) is not None:
            messages.append(assistant)

    out: JSON = {"model": req.model, "messages": messages, max_tokens_field: req.max_tokens}
    for key in ("temperature", "top_p"):
        if getattr(req, key) is not None:
            out[key] = getattr(req, key)
    if top_k and req.top_k is not None:
        out["top_k"] = req.top_k
    if req.stop_sequences:
        if len(req.stop_sequences) > MAX_CHAT_STOPS:
            raise _refused("stop_sequences", f"this model takes at most {MAX_CHAT_STOPS} stop sequences")
        out["stop"] = list(req.stop_sequences)
    if req.tools:
        out["tools"] = _tools(req.tools)
        out.update(_tool_choice(req.tool_choice))
    if req.metadata is not None and req.metadata.user_id:
        out["user"] = req.metadata.user_id
    if req.stream:
        # Usage comes last in a chat stream; it is what message_delta reports.
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# ------------------------------------------------------------------ errors

_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
        "timeout_error",
    }
)
_OVERLOADED = (503, 529)
_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(exc: TunepipeError) -> str:
    """Anthropic's error ``type`` for an error: its own when Anthropic has that type (an
    Anthropic upstream's, or one both APIs share), else the one its status stands for. An
    upstream that said it is overloaded (503, Anthropic's 529) is ``overloaded_error``, which
    Anthropic clients back off from."""
    if isinstance(exc, UpstreamError) and exc.upstream_status in _OVERLOADED:
        return "overloaded_error"
    if exc.error_type in _TYPES:
        return exc.error_type
    status = exc.status_code
    return _BY_STATUS.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_body(exc: TunepipeError) -> JSON:
    """Anthropic's error body, plus OpenPipe's top-level ``message`` and ``code``."""
    return {
        "type": "error",
        "error": {"type": error_type(exc), "message": exc.message},
        "message": exc.message,
        "code": trpc_code(exc.status_code),
    }
