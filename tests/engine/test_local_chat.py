"""``local:<name>`` on ``/chat/completions`` through the real server and the openai SDK: the
OpenAI request surface on a tiny model, checked against plain ``model.generate`` in this process."""

from __future__ import annotations

import concurrent.futures
import uuid
from typing import Any

import openai
import orjson
import pytest

from conftest import Gateway
from engine.conftest import PROMPTS, Reference, user, wait_for_log

MODEL = "local:tiny"


def ask(gateway: Gateway, messages: list[Any], **kwargs: Any) -> Any:
    return gateway.client().chat.completions.create(model=MODEL, messages=messages, **kwargs)


def stream_text(gateway: Gateway, messages: list[Any], **kwargs: Any) -> tuple[str, list[Any]]:
    chunks = list(ask(gateway, messages, stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_local_basic_completion_counts_tokens_with_the_tokenizer(local: Gateway, tiny_ref: Reference) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]
    r = ask(local, messages, max_tokens=12)
    assert r.model == MODEL
    assert r.object == "chat.completion"
    assert len(r.choices) == 1
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None
    assert r.usage.prompt_tokens == len(tiny_ref.prompt_ids(messages))
    assert 1 <= r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_local_greedy_equals_hf_generate(local: Gateway, tiny_ref: Reference) -> None:
    for prompt in PROMPTS[:2]:
        r = ask(local, user(prompt), temperature=0, max_tokens=30)
        text, ids = tiny_ref.greedy_with_ids(user(prompt), 30)
        assert r.choices[0].message.content == text
        assert r.usage.completion_tokens == len(ids)


def test_local_seed_reproduces_a_sample(local: Gateway) -> None:
    kwargs: dict[str, Any] = {"temperature": 1.0, "max_tokens": 20}
    a = ask(local, user(PROMPTS[0]), seed=11, **kwargs).choices[0].message.content
    b = ask(local, user(PROMPTS[0]), seed=11, **kwargs).choices[0].message.content
    c = ask(local, user(PROMPTS[0]), seed=12, **kwargs).choices[0].message.content
    assert a == b
    assert c != a


def test_local_sampling_parameters_are_accepted(local: Gateway) -> None:
    # top_p 0 is valid for OpenAI; it keeps just the most likely token.
    r = ask(
        local,
        user(PROMPTS[1]),
        temperature=0.7,
        top_p=0.0,
        presence_penalty=1.0,
        frequency_penalty=0.5,
        seed=1,
        max_completion_tokens=8,
    )
    assert r.usage.completion_tokens <= 8


def test_local_penalties_change_greedy_output(local: Gateway, tiny_ref: Reference) -> None:
    plain = tiny_ref.greedy(user(PROMPTS[0]), 30)
    penalised = ask(local, user(PROMPTS[0]), temperature=0, max_tokens=30, frequency_penalty=2.0)
    assert penalised.choices[0].message.content != plain


def stop_case(tiny_ref: Reference) -> tuple[list[dict[str, Any]], str, str]:
    """A prompt, a stop string taken from the middle of its greedy output, and the expected cut."""
    messages = user(PROMPTS[1])
    full = tiny_ref.greedy(messages, 40)
    stop = full[12:16]
    assert full.index(stop) > 0
    return messages, stop, full[: full.index(stop)]


def test_local_stop_string_cuts_exactly(local: Gateway, tiny_ref: Reference) -> None:
    messages, stop, expected = stop_case(tiny_ref)
    r = ask(local, messages, temperature=0, max_tokens=40, stop=stop)
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason == "stop"
    # With several stop strings the first match in the text wins.
    r = ask(local, messages, temperature=0, max_tokens=40, stop=["never-there", stop])
    assert r.choices[0].message.content == expected


def test_local_stop_string_streaming_leaks_no_partial_match(local: Gateway, tiny_ref: Reference) -> None:
    messages, stop, expected = stop_case(tiny_ref)
    text, chunks = stream_text(local, messages, temperature=0, max_tokens=40, stop=[stop])
    assert text == expected
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # Every prefix the client saw is a prefix of the cut text: no stop text went out and was
    # taken back.
    seen = ""
    for c in chunks:
        if c.choices:
            seen += c.choices[0].delta.content or ""
            assert expected.startswith(seen)


def test_local_n_choices(local: Gateway, tiny_ref: Reference) -> None:
    greedy = ask(local, user(PROMPTS[2]), temperature=0, max_tokens=20, n=2)
    expected = tiny_ref.greedy(user(PROMPTS[2]), 20)
    assert [c.index for c in greedy.choices] == [0, 1]
    assert [c.message.content for c in greedy.choices] == [expected, expected]

    sampled = ask(local, user(PROMPTS[2]), temperature=1.0, max_tokens=20, n=3, seed=5)
    assert [c.index for c in sampled.choices] == [0, 1, 2]
    texts = [c.message.content for c in sampled.choices]
    assert len(set(texts)) > 1
    # Choice i is sampled with seed + i.
    alone = ask(local, user(PROMPTS[2]), temperature=1.0, max_tokens=20, seed=6)
    assert alone.choices[0].message.content == texts[1]
    assert 3 <= sampled.usage.completion_tokens <= 3 * 20
    assert greedy.usage.completion_tokens == 2 * len(tiny_ref.greedy_with_ids(user(PROMPTS[2]), 20)[1])


def test_local_logprobs_and_top_logprobs(local: Gateway) -> None:
    r = ask(local, user(PROMPTS[3]), temperature=0, max_tokens=10, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert content is not None
    # One entry per generated token (an end-of-turn token has none).
    assert len(content) in (r.usage.completion_tokens, r.usage.completion_tokens - 1)
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert all(v <= 0 for v in values)
        # Greedy: the chosen token is the most likely one.
        assert entry.logprob == pytest.approx(values[0])
        assert entry.token == entry.top_logprobs[0].token
        assert entry.bytes == list(entry.token.encode())
    plain = ask(local, user(PROMPTS[3]), temperature=0, max_tokens=10)
    assert plain.choices[0].logprobs is None


def test_local_logprobs_without_top_logprobs(local: Gateway) -> None:
    r = ask(local, user(PROMPTS[3]), temperature=1.0, seed=3, max_tokens=6, logprobs=True)
    content = r.choices[0].logprobs.content
    assert content and all(e.logprob <= 0 and e.top_logprobs == [] for e in content)


def test_local_max_tokens_finishes_with_length(local: Gateway, tiny_ref: Reference) -> None:
    text, ids = tiny_ref.greedy_with_ids(user(PROMPTS[1]), 40)
    assert len(ids) == 40 and ids[-1] != tiny_ref.tokenizer.eos_token_id
    r = ask(local, user(PROMPTS[1]), temperature=0, max_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    assert text.startswith(r.choices[0].message.content)
    r = ask(local, user(PROMPTS[1]), temperature=0, max_completion_tokens=3)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


COLOR_SCHEMA = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "color": {"enum": ["red", "green", "blue"]},
        "size": {"enum": [1, 2, 3]},
    },
    "required": ["ok", "color", "size"],
    "additionalProperties": False,
}


def test_local_json_schema_output_always_validates(local: Gateway) -> None:
    r = ask(
        local,
        user("give me a json object"),
        temperature=1.0,
        seed=0,
        n=4,
        max_tokens=60,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "color", "schema": COLOR_SCHEMA, "strict": True},
        },
    )
    assert len(r.choices) == 4
    for choice in r.choices:
        assert choice.finish_reason == "stop"
        value = orjson.loads(choice.message.content)
        assert set(value) == {"ok", "color", "size"}
        assert isinstance(value["ok"], bool)
        assert value["color"] in ("red", "green", "blue")
        assert value["size"] in (1, 2, 3) and not isinstance(value["size"], bool)


def test_local_json_schema_streaming(local: Gateway) -> None:
    text, _ = stream_text(
        local,
        user("stream json"),
        temperature=0,
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": COLOR_SCHEMA}},
    )
    assert set(orjson.loads(text)) == {"ok", "color", "size"}


def test_local_json_object_parses_or_is_cut_by_length(local: Gateway) -> None:
    r = ask(
        local,
        user("json please"),
        temperature=1.0,
        seed=2,
        n=3,
        max_tokens=30,
        response_format={"type": "json_object"},
    )
    for choice in r.choices:
        text = choice.message.content
        assert text.startswith("{")
        if choice.finish_reason == "stop":
            assert isinstance(orjson.loads(text), dict)
        else:
            assert choice.finish_reason == "length"
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(text)


def test_local_invalid_json_schema_is_a_400(local: Gateway) -> None:
    with pytest.raises(openai.BadRequestError):
        ask(
            local,
            user("x"),
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "bad",
                    "schema": {"type": "object", "properties": {"a": {"$ref": "#/nope"}}},
                },
            },
        )


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["paris", "london", "tokyo"]}, "celsius": {"type": "boolean"}},
            "required": ["city", "celsius"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"enum": ["utc", "local"]}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}


def assert_weather_call(call: Any) -> None:
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    args = orjson.loads(call.function.arguments)
    assert set(args) == {"city", "celsius"}
    assert args["city"] in ("paris", "london", "tokyo") and isinstance(args["celsius"], bool)


def test_local_tool_choice_required_calls_a_tool(local: Gateway) -> None:
    r = ask(
        local,
        user("weather in paris?"),
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=80,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and len(choice.message.tool_calls) == 1
    assert_weather_call(choice.message.tool_calls[0])


def test_local_tool_choice_named_calls_that_tool(local: Gateway) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    r = ask(local, user("what time?"), tools=[WEATHER, TIME], tool_choice=named, max_tokens=80, seed=1)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_time"
    assert orjson.loads(call.function.arguments)["zone"] in ("utc", "local")

    r = ask(
        local,
        user("weather?"),
        tools=[TIME, WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=80,
    )
    assert r.choices[0].finish_reason == "tool_calls"
    assert_weather_call(r.choices[0].message.tool_calls[0])


def test_local_tool_choice_required_streaming(local: Gateway) -> None:
    chunks = list(
        ask(
            local,
            user("weather?"),
            tools=[WEATHER],
            tool_choice="required",
            max_tokens=80,
            stream=True,
            temperature=0,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].index == 0
    assert_weather_call(calls[0])
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


def test_local_legacy_functions_answer_with_function_call(local: Gateway) -> None:
    """A request in the legacy form gets the legacy answer: ``function_call``, not ``tool_calls``."""
    functions = [WEATHER["function"]]
    forced = {"name": "get_weather"}
    r = ask(local, user("weather?"), functions=functions, function_call=forced, max_tokens=80, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "function_call" and not choice.message.tool_calls
    assert choice.message.function_call.name == "get_weather"
    assert set(orjson.loads(choice.message.function_call.arguments)) == {"city", "celsius"}
    chunks = list(
        ask(
            local,
            user("weather?"),
            functions=functions,
            function_call=forced,
            max_tokens=80,
            temperature=0,
            stream=True,
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert not any(d.tool_calls for d in deltas)
    arguments = "".join(d.function_call.arguments or "" for d in deltas if d.function_call)
    assert orjson.loads(arguments) == orjson.loads(choice.message.function_call.arguments)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["function_call"]


def test_local_tool_choice_none_is_plain_text(local: Gateway, tiny_ref: Reference) -> None:
    r = ask(local, user(PROMPTS[4]), tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=30)
    choice = r.choices[0]
    assert not choice.message.tool_calls
    assert choice.finish_reason in ("stop", "length")
    # The tools are hidden from the model: the same prompt as without them.
    assert choice.message.content == tiny_ref.greedy(user(PROMPTS[4]), 30)


def test_local_tool_choice_unknown_name_is_a_400(local: Gateway) -> None:
    with pytest.raises(openai.BadRequestError):
        ask(local, user("x"), tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})


def test_local_streaming_with_usage(local: Gateway, tiny_ref: Reference) -> None:
    messages = user(PROMPTS[5])
    text, chunks = stream_text(
        local, messages, temperature=0, max_tokens=25, stream_options={"include_usage": True}
    )
    expected, ids = tiny_ref.greedy_with_ids(messages, 25)
    assert text == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert usage_chunks == [chunks[-1]]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == len(tiny_ref.prompt_ids(messages))
    assert chunks[-1].usage.completion_tokens == len(ids)
    assert chunks[-2].choices[0].finish_reason == (
        "stop" if ids[-1] == tiny_ref.tokenizer.eos_token_id else "length"
    )


def test_local_streaming_without_usage_sends_no_usage_chunk(local: Gateway) -> None:
    _, chunks = stream_text(local, user(PROMPTS[0]), temperature=0, max_tokens=5)
    assert all(c.usage is None for c in chunks)


def test_local_concurrent_requests_equal_sequential_greedy(local: Gateway, tiny_ref: Reference) -> None:
    budgets = [10 + 4 * i for i in range(len(PROMPTS))]
    expected = [tiny_ref.greedy(user(p), b) for p, b in zip(PROMPTS, budgets, strict=True)]

    def one(i: int) -> str:
        r = ask(local, user(PROMPTS[i]), temperature=0, max_tokens=budgets[i])
        return str(r.choices[0].message.content)

    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        got = list(pool.map(one, range(len(PROMPTS))))
    assert got == expected


def test_local_calls_are_logged(local: Gateway) -> None:
    marker = f"m{uuid.uuid4().hex[:8]}"
    r = ask(local, user(f"hello {marker}"), temperature=0, max_tokens=7)
    logged = wait_for_log(local, model=MODEL, contains=marker)
    assert logged["model"] == MODEL
    assert logged["statusCode"] == 200
    assert logged["inputTokens"] == r.usage.prompt_tokens
    assert logged["outputTokens"] == r.usage.completion_tokens
    assert logged["finishReason"] == r.choices[0].finish_reason

    text, _ = stream_text(local, user(f"stream {marker}"), temperature=0, max_tokens=7)
    logged = wait_for_log(local, model=MODEL, contains=f"stream {marker}")
    assert logged["streamed"] is True
    assert logged["outputTokens"] >= 1


def test_local_unknown_model_is_a_404(local: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        local.client().chat.completions.create(model="local:no-such-model", messages=user("hi"))
    assert info.value.status_code == 404


def test_local_model_reaches_the_gateway_through_the_openpipe_sdk(
    local: Gateway, tiny_ref: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The openpipe SDK sends only `openpipe:`, `openai:`, `anthropic:` and `gemini:` models to
    the gateway (others go to OpenAI directly): `openpipe:local/<id>` is the name it forwards."""
    from openpipe import OpenAI as OpenPipeOpenAI

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client = OpenPipeOpenAI(openpipe={"api_key": local.key, "base_url": local.base_url})
    messages = user(PROMPTS[0])
    reply = client.chat.completions.create(
        model="openpipe:local/tiny", messages=messages, temperature=0, max_tokens=20
    )
    assert reply.choices[0].message.content == tiny_ref.greedy_with_ids(messages, 20)[0]
    marker = PROMPTS[0]
    logged = local.wait_for_log(marker)
    assert logged["reqPayload"]["model"] == "openpipe:local/tiny" and logged["statusCode"] == 200
    with local.http() as h:
        r = h.post("/external-providers", json={"slug": "local", "baseUrl": "http://example.com/v1"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "slug"


def test_local_allowed_tools_narrow_the_tools(local: Gateway) -> None:
    """``tool_choice: allowed_tools`` with ``mode: required``: only the allowed tool is called."""
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_time"}}],
        },
    }
    r = ask(local, user("what time?"), tools=[WEATHER, TIME], tool_choice=allowed, max_tokens=80, seed=2)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["get_time"]


CUSTOM_TOOL = {"type": "custom", "custom": {"name": "run_sql", "description": "free-form SQL"}}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [WEATHER, CUSTOM_TOOL]}, "tools[1].type"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "custom", "custom": {"name": "run_sql"}}},
            "tool_choice.type",
        ),
    ],
)
def test_local_custom_tools_are_a_400_naming_the_field(
    local: Gateway, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        ask(local, user("x"), max_tokens=4, **extra)
    assert err.value.body["param"] == param  # type: ignore[index]
    assert "only function tools" in err.value.body["message"]  # type: ignore[index]


def test_local_custom_tool_call_in_history_is_a_400(local: Gateway) -> None:
    history = [
        {"role": "user", "content": "count rows"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "custom", "custom": {"name": "run_sql", "input": "select 1"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
    ]
    with pytest.raises(openai.BadRequestError) as err:
        ask(local, history, max_tokens=4)
    assert err.value.body["param"] == "messages[1].tool_calls[0].type"  # type: ignore[index]


def test_local_answer_carries_a_null_refusal(local: Gateway) -> None:
    """``message.refusal`` is required (nullable) in OpenAI's response schema."""
    raw = local.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=user("hi"), max_tokens=3
    )
    message = orjson.loads(raw.content)["choices"][0]["message"]
    assert "refusal" in message and message["refusal"] is None
