"""The Chat Completions request, as OpenAI and OpenPipe define it.

Validation only: the gateway forwards the caller's own JSON (so fields it does not know still
reach the provider) and uses these models to reject malformed requests with a 400 that names the
field. Unknown fields are allowed at every level; message and part shapes are checked by
role/type.

What is declared here accepts everything OpenAI's published request schema accepts (a property
test generates requests from that schema, ``tests/api/test_openai_request_schema.py``), and is
refused beyond it only where OpenAI's server refuses too: ``stream_options`` without ``stream``,
``top_logprobs`` without ``logprobs``, a token limit below 1. Typed fields are strict: ``"2"`` is
not a number and ``"true"`` not a boolean (integers may be written ``2.0``, as JSON allows).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tunepipe.protocol.types import WholeNumber


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImageURL(_Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Open):
    data: str
    format: Literal["wav", "mp3"]


class AudioPart(_Open):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(_Open):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Open):
    type: Literal["file"]
    file: FileRef


class RefusalPart(_Open):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionCall(_Open):
    name: str = ""
    arguments: str = ""


class FunctionToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class CustomCall(_Open):
    name: str
    input: str


class CustomToolCall(_Open):
    """A call of a custom (free-form input) tool: OpenAI serves these; others refuse them."""

    id: str
    type: Literal["custom"]
    custom: CustomCall


ToolCall = FunctionToolCall | CustomToolCall


class SystemMessage(_Open):
    role: Literal["system"]
    content: str | list[TextPart] = ""
    name: str | None = None


class DeveloperMessage(_Open):
    role: Literal["developer"]
    content: str | list[TextPart] = ""
    name: str | None = None


class UserMessage(_Open):
    role: Literal["user"]
    content: str | list[UserPart] = ""
    name: str | None = None


class AssistantMessage(_Open):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    audio: dict[str, Any] | None = None
    function_call: FunctionCall | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    refusal: str | None = None


class ToolMessage(_Open):
    role: Literal["tool"]
    content: str | list[TextPart] = ""
    tool_call_id: str


class FunctionMessage(_Open):
    role: Literal["function"]
    name: str
    content: str | None


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]


class LegacyFunctionDef(_Open):
    """An entry of the deprecated ``functions``: no ``strict`` here (any value passes through)."""

    name: str
    parameters: dict[str, Any] | None = None
    description: str | None = None


class FunctionDef(LegacyFunctionDef):
    strict: bool | None = None


class FunctionTool(_Open):
    type: Literal["function"] = "function"
    function: FunctionDef


class CustomToolDef(_Open):
    name: str
    description: str | None = None
    format: dict[str, Any] | None = None


class CustomTool(_Open):
    type: Literal["custom"]
    custom: CustomToolDef


Tool = FunctionTool | CustomTool


class NamedFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"] = "function"
    function: NamedFunction


class NamedCustomChoice(_Open):
    type: Literal["custom"]
    custom: NamedFunction


class AllowedTools(_Open):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class AllowedToolsChoice(_Open):
    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice | NamedCustomChoice | AllowedToolsChoice


class JsonSchemaSpec(_Open):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(_Open):
    type: Literal["text"]


class ResponseFormatJsonObject(_Open):
    type: Literal["json_object"]


class ResponseFormatJsonSchema(_Open):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema, Field(discriminator="type")
]


class StreamOptions(_Open):
    include_usage: bool = False


class VoiceRef(_Open):
    id: str


class AudioOutput(_Open):
    format: Literal["wav", "mp3", "flac", "opus", "pcm16", "aac"]
    voice: str | VoiceRef  # a built-in voice's name, or a custom voice


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    audio: AudioOutput | None = None
    function_call: Literal["none", "auto"] | NamedFunction | None = None
    functions: list[LegacyFunctionDef] | None = None
    tool_choice: ToolChoice | None = None
    tools: list[Tool] | None = None
    parallel_tool_calls: bool | None = None
    n: WholeNumber | None = Field(default=None, ge=1, le=128)
    max_tokens: WholeNumber | None = Field(default=None, ge=1)
    max_completion_tokens: WholeNumber | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: str | list[str] | None = None
    logprobs: bool | None = None
    top_logprobs: WholeNumber | None = Field(default=None, ge=0, le=20)
    seed: WholeNumber | None = None
    store: bool | None = None
    response_format: ResponseFormat | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None

    # Field validators rather than one model validator, so that the error names the field
    # (``param``). Each reads only fields declared before it (``info.data``).
    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("takes at most 4 sequences")
        return stop

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_needs_logprobs(cls, top_logprobs: int | None, info: ValidationInfo) -> int | None:
        if top_logprobs is not None and not info.data.get("logprobs"):
            raise ValueError("requires `logprobs: true`")
        return top_logprobs

    @field_validator("stream_options")
    @classmethod
    def _stream_options_need_stream(
        cls, options: StreamOptions | None, info: ValidationInfo
    ) -> StreamOptions | None:
        if options is not None and not info.data.get("stream"):
            raise ValueError("is only allowed with `stream: true`")
        return options
