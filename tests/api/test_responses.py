"""The Responses API (``/responses``), driven with the pinned ``openai`` SDK against a real
``tunepipe serve``.

Non-OpenAI models (``gemini:…``, ``anthropic:…`` here) are answered through the chat pipeline;
what reached the upstream is read back from the fake provider's request record. OpenAI models
are passed through to the fake's ``/v1/responses``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from conftest import KEY_RE, FakeProvider, Gateway

MODEL = "gemini:gemini-2.0-flash"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def _logged(gateway: Gateway, marker: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The logged call whose request or response mentions ``marker``, with its bodies."""
    deadline = time.monotonic() + timeout_s
    with gateway.http() as h:
        while True:
            found = h.get("/logs", params={"contains": marker, "bodies": "true"}).json()["data"]
            if found:
                return dict(found[0])
            assert time.monotonic() < deadline, f"no log mentions {marker}"
            time.sleep(0.05)


def _other_key(gateway: Gateway) -> str:
    return str(KEY_RE.findall(gateway.cli("projects", "create", f"resp-{uuid.uuid4().hex[:8]}").stdout)[0])


def test_responses_create_answers_through_the_chat_pipeline(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    r = gateway.client().responses.create(
        model=MODEL,
        input=m,
        instructions="Answer briefly.",
        temperature=0.5,
        top_p=0.9,
        metadata={"team": "search"},
        reasoning={"effort": "low"},
        user="u-1",
    )
    assert r.id.startswith("resp_") and r.object == "response" and isinstance(r.created_at, int | float)
    assert r.status == "completed" and r.error is None and r.incomplete_details is None
    assert r.output_text == f"echo: {m}"
    message = r.output[0]
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (3, 2, 5)
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0
    assert (r.model, r.instructions, r.temperature, r.top_p) == (MODEL, "Answer briefly.", 0.5, 0.9)
    assert r.metadata == {"team": "search"} and r.tool_choice == "auto" and r.tools == []
    assert r.parallel_tool_calls is True and r.previous_response_id is None
    upstream = fake_provider.last()["body"]
    assert upstream["model"] == "gemini-2.0-flash"
    assert upstream["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": m},
    ]
    assert (upstream["temperature"], upstream["top_p"], upstream["user"]) == (0.5, 0.9, "u-1")
    assert upstream["reasoning_effort"] == "low"
    assert "metadata" not in upstream and "instructions" not in upstream and "input" not in upstream
    logged = _logged(gateway, m)
    assert logged["endpoint"] == "responses" and logged["statusCode"] == 200
    assert logged["reqPayload"]["messages"][-1] == {"role": "user", "content": m}
    assert logged["metadata"]["team"] == "search"
    assert (logged["inputTokens"], logged["outputTokens"]) == (3, 2)


def test_responses_v1_alias_and_anthropic_route(gateway: Gateway, fake_provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=f"{gateway.root}/v1", api_key=gateway.key, max_retries=0)
    m = _marker()
    r = client.responses.create(
        model="anthropic:claude-3-5-haiku-latest",
        input=[{"role": "user", "content": [{"type": "input_text", "text": m}]}],
        max_output_tokens=50,
    )
    assert r.output_text == f"echo: {m}"
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/messages" and upstream["body"]["max_tokens"] == 50


def test_responses_use_the_chat_pipelines_fallbacks_and_cache(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    client = gateway.client()
    m = _marker()
    fell_back = client.responses.with_raw_response.create(
        model="gemini:fail-503", input=m, extra_headers={"op-fallback": f'["{MODEL}"]'}
    )
    assert fell_back.parse().output_text == f"echo: {m}" and fell_back.headers["op-model"] == MODEL
    c = _marker()
    statuses = []
    for _ in range(2):
        raw = client.responses.with_raw_response.create(
            model=MODEL, input=c, extra_headers={"op-cache": "readWrite"}
        )
        statuses.append(raw.headers["op-cache-status"])
        assert raw.parse().output_text == f"echo: {c}"
    assert statuses == ["MISS", "HIT"]
    assert sum(c in json.dumps(r["body"]) for r in fake_provider.requests()) == 1


def test_responses_input_items_translate_to_chat_messages(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = _marker()
    image = "data:image/png;base64,iVBORw0KGgo="
    gateway.client().responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Be exact."},
            {"role": "user", "content": "first"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "answer one", "annotations": []}],
            },
            {
                "type": "function_call",
                "call_id": "call_a",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_a", "output": "cold"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": m},
                    {"type": "input_image", "image_url": image, "detail": "low"},
                ],
            },
        ],
        tools=[WEATHER],
        tool_choice="none",
    )
    body = fake_provider.last()["body"]
    assert body["messages"] == [
        {"role": "developer", "content": "Be exact."},
        {"role": "user", "content": "first"},
        {
            "role": "assistant",
            "content": "answer one",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "cold"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": m},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == "none"


def test_responses_tool_round_trip_with_function_call_output(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    client = gateway.client()
    m = _marker()
    first = client.responses.create(
        model="gemini:tool-then-answer",
        input=m,
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        store=False,
    )
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": m} and call.call_id.startswith("call_")
    assert first.output_text == "" and first.tool_choice.type == "function"  # type: ignore[union-attr]
    sent = fake_provider.last()["body"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    second = client.responses.create(
        model="gemini:tool-then-answer",
        input=[
            {"role": "user", "content": m},
            call.model_dump(exclude_none=True),  # type: ignore[misc]
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text == "tool said: sunny"
    messages = fake_provider.last()["body"]["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


def test_responses_text_format_json_schema_parses(gateway: Gateway, fake_provider: FakeProvider) -> None:
    class Person(BaseModel):
        name: str
        age: int
        city: str

    r = gateway.client().responses.parse(
        model="gemini:teacher-extract", input="Meet Ada, 36, from Paris.", text_format=Person
    )
    assert r.output_parsed == Person(name="Ada", age=36, city="Paris")
    fmt = fake_provider.last()["body"]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Person"
    assert fmt["json_schema"]["strict"] is True and "age" in fmt["json_schema"]["schema"]["properties"]
    assert r.text is not None and r.text.format is not None and r.text.format.type == "json_schema"
    gateway.client().responses.create(model=MODEL, input="x", text={"format": {"type": "json_object"}})
    assert fake_provider.last()["body"]["response_format"] == {"type": "json_object"}


def test_responses_previous_response_id_continues_the_conversation(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    client = gateway.client()
    a, b = _marker(), _marker()
    first = client.responses.create(model=MODEL, input=a, instructions="Only here.")
    second = client.responses.create(model=MODEL, input=b, previous_response_id=first.id)
    assert second.output_text == f"echo: {b}" and second.previous_response_id == first.id
    assert fake_provider.last()["body"]["messages"] == [
        {"role": "user", "content": a},
        {"role": "assistant", "content": f"echo: {a}"},
        {"role": "user", "content": b},
    ]
    third = client.responses.create(model=MODEL, input="c", previous_response_id=second.id)
    assert [msg["content"] for msg in fake_provider.last()["body"]["messages"]] == [
        a,
        f"echo: {a}",
        b,
        f"echo: {b}",
        "c",
    ]
    assert third.status == "completed"


def test_responses_max_output_tokens_makes_it_incomplete(gateway: Gateway) -> None:
    client = gateway.client()
    r = client.responses.create(model=MODEL, input="one two three four", max_output_tokens=2)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text == "echo: one" and r.max_output_tokens == 2
    with client.responses.stream(model=MODEL, input="one two three four", max_output_tokens=2) as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.incomplete"


def test_responses_stream_events_in_order(gateway: Gateway) -> None:
    m = _marker()
    with gateway.client().responses.stream(model=MODEL, input=f"hello {m}") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == f"echo: hello {m}" and len(deltas) == 3
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == f"echo: hello {m}" and final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 3
    assert gateway.client().responses.retrieve(final.id).output_text == final.output_text
    assert _logged(gateway, m)["endpoint"] == "responses"


def test_responses_stream_sse_event_lines_name_the_type(gateway: Gateway) -> None:
    with (
        gateway.http() as h,
        h.stream("POST", "/responses", json={"model": MODEL, "input": "hi", "stream": True}) as resp,
    ):
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    datas = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert names == [d["type"] for d in datas] and names[-1] == "response.completed"


def test_responses_stream_tool_call_events(gateway: Gateway) -> None:
    m = _marker()
    stream = gateway.client().responses.create(
        model="gemini:tool-then-answer", input=m, tools=[WEATHER], stream=True
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = events[5]
    assert done.type == "response.function_call_arguments.done" and json.loads(done.arguments) == {"city": m}
    final = events[-1]
    assert final.type == "response.completed"
    item = final.response.output[0]
    assert (
        item.type == "function_call"
        and item.name == "get_weather"
        and json.loads(item.arguments) == {"city": m}
    )


def test_responses_stream_broken_upstream_ends_with_response_failed(gateway: Gateway) -> None:
    events = list(
        gateway.client().responses.create(model="gemini:fail-midstream", input="x y z", stream=True)
    )
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert (
        failed.status == "failed" and failed.error is not None and "upstream exploded" in failed.error.message
    )
    assert "response.output_text.delta" in [e.type for e in events]


async def test_responses_async_client(gateway: Gateway) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)
    m = _marker()
    r = await client.responses.create(model=MODEL, input=m)
    assert r.output_text == f"echo: {m}"
    async with client.responses.stream(model=MODEL, input=m) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == f"echo: {m}"
    await client.close()


def test_responses_stored_get_input_items_and_delete(gateway: Gateway) -> None:
    client = gateway.client()
    r = client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    )
    got = client.responses.retrieve(r.id)
    assert got.model_dump() == r.model_dump()
    items = client.responses.input_items.list(r.id, order="asc")
    assert [i.content[0].text for i in items.data] == ["a", "b"]  # type: ignore[union-attr]
    assert all(i.id for i in items.data)
    assert [i.content[0].text for i in client.responses.input_items.list(r.id).data] == ["b", "a"]  # type: ignore[union-attr]
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)
    unstored = client.responses.create(model=MODEL, input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_responses_another_project_cannot_see_or_continue_them(gateway: Gateway) -> None:
    r = gateway.client().responses.create(model=MODEL, input="private")
    stranger = gateway.client(_other_key(gateway))
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.input_items.list(r.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as caught:
        stranger.responses.create(model=MODEL, input="more", previous_response_id=r.id)
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert gateway.client().responses.retrieve(r.id).output_text == "echo: private"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": MODEL, "input": 5}, "input"),
        ({"model": MODEL, "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_video"}]}]},
            "input[0].content[0].type",
        ),
        ({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": MODEL, "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": MODEL, "input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format"),
        ({"model": MODEL, "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": MODEL, "input": []}, "input"),
        ({"model": MODEL, "input": "x", "background": True}, "background"),
    ],
)
def test_responses_bad_input_is_a_400_naming_the_field(
    gateway: Gateway, body: dict[str, Any], param: str
) -> None:
    with gateway.http() as h:
        resp = h.post("/responses", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_responses_errors_use_the_openai_envelope(gateway: Gateway) -> None:
    with gateway.http() as h:
        bad_json = h.post("/responses", content=b"{nope", headers={"content-type": "application/json"})
        missing = h.post(
            "/responses", json={"model": MODEL, "input": "x", "previous_response_id": "resp_nope"}
        )
        unknown = h.get("/responses/resp_nope")
    assert bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "previous_response_not_found"
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    with pytest.raises(openai.AuthenticationError):
        gateway.client("opk_wrong").responses.create(model=MODEL, input="x")
    with pytest.raises(openai.NotFoundError):
        gateway.client().responses.create(model="gemini:fail-404", input="x")


def test_responses_openai_models_pass_through(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    raw = gateway.client().responses.with_raw_response.create(
        model="openai:gpt-4o", input=m, metadata={"k": "v"}, include=["message.output_text.logprobs"]
    )
    r = raw.parse()
    assert r.output_text == f"echo: {m}" and r.id.startswith("resp_fake")
    assert json.loads(raw.text)["fake_extra"] == "kept"  # the upstream's own bytes
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/responses" and upstream["body"]["model"] == "gpt-4o"
    assert upstream["body"]["include"] == ["message.output_text.logprobs"]
    assert upstream["headers"]["Authorization"] == "Bearer sk-fake-openai"
    logged = _logged(gateway, m)
    assert logged["endpoint"] == "responses" and logged["metadata"]["k"] == "v"
    assert logged["respPayload"]["choices"][0]["message"]["content"] == f"echo: {m}"
    assert (logged["inputTokens"], logged["outputTokens"]) == (1, 2)


def test_responses_openai_stream_passes_through(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = _marker()
    with gateway.client().responses.stream(model="gpt-4o-mini", input=f"hi {m}") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text == f"echo: hi {m}"
    assert fake_provider.last()["body"]["stream"] is True
    logged = _logged(gateway, m)
    assert logged["streamed"] is True and logged["endpoint"] == "responses"
    assert logged["outputTokens"] == 3


def test_responses_openai_stored_responses_are_relayed_for_their_project_only(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    client = gateway.client()
    m = _marker()
    made = client.responses.create(model="gpt-4o", input=m)
    assert made.id.startswith("resp_fake")
    got = client.responses.retrieve(made.id)
    assert got.output_text == f"echo: {m}" and fake_provider.last()["path"] == f"/v1/responses/{made.id}"
    items = client.responses.input_items.list(made.id)
    assert [i.content[0].text for i in items.data] == [m]  # type: ignore[union-attr]
    follow = client.responses.create(model="openai:gpt-4o", input="next", previous_response_id=made.id)
    assert follow.output_text == "echo: next"
    assert fake_provider.last()["body"]["previous_response_id"] == made.id
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="next", previous_response_id=made.id)
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    stranger = gateway.client(_other_key(gateway))
    fake_provider.clear()
    for attempt in (
        lambda: stranger.responses.retrieve(made.id),
        lambda: stranger.responses.delete(made.id),
        lambda: stranger.responses.create(model="gpt-4o", input="x", previous_response_id=made.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert fake_provider.requests() == []  # nothing of it reached OpenAI
    client.responses.delete(made.id)
    assert fake_provider.last()["path"] == f"/v1/responses/{made.id}"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    # Deleted at OpenAI behind the gateway's back: the 404 comes through and the mark goes too.
    gone = client.responses.create(model="gpt-4o", input="gone")
    httpx.delete(f"{fake_provider.url}/v1/responses/{gone.id}")
    for _ in range(2):
        with pytest.raises(openai.NotFoundError):
            client.responses.delete(gone.id)
    fake_provider.clear()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(gone.id)
    assert fake_provider.requests() == []
    with gateway.client().responses.stream(model="gpt-4o", input="streamed") as stream:
        final = stream.get_final_response()
    assert client.responses.retrieve(final.id).output_text == "echo: streamed"


def test_responses_openai_model_continues_a_response_stored_here(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    """OpenAI does not know this id, so the call goes through the chat pipeline instead."""
    client = gateway.client()
    a = _marker()
    first = client.responses.create(model=MODEL, input=a)
    second = client.responses.create(model="gpt-4o", input="next", previous_response_id=first.id)
    assert second.output_text == "echo: next" and second.id.startswith("resp_") and second.model == "gpt-4o"
    upstream = fake_provider.last()
    assert upstream["path"] == "/v1/chat/completions"
    assert [m["content"] for m in upstream["body"]["messages"]] == [a, f"echo: {a}", "next"]


def test_responses_logged_with_the_request_id(gateway: Gateway) -> None:
    m = _marker()
    for model in (MODEL, "gpt-4o"):
        raw = gateway.client().responses.with_raw_response.create(
            model=model, input=f"{m}-{model}", extra_headers={"x-request-id": f"rid-{m}-{model[:3]}"}
        )
        assert raw.headers["x-request-id"] == f"rid-{m}-{model[:3]}"
        assert _logged(gateway, f"{m}-{model}")["requestId"] == f"rid-{m}-{model[:3]}"


def test_responses_openai_pass_through_errors(gateway: Gateway) -> None:
    with pytest.raises(openai.RateLimitError):
        gateway.client().responses.create(model="fail-429", input="x")
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client(gateway.read_only_key).responses.create(model="gpt-4o", input="x")


def test_responses_read_only_key_cannot_delete(gateway: Gateway) -> None:
    r = gateway.client().responses.create(model=MODEL, input="keep")
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client(gateway.read_only_key).responses.delete(r.id)
    assert gateway.client(gateway.read_only_key).responses.retrieve(r.id).id == r.id


def test_responses_route_serves_v1_prefix_with_httpx(gateway: Gateway) -> None:
    resp = httpx.post(
        f"{gateway.root}/v1/responses",
        json={"model": MODEL, "input": "plain"},
        headers={"Authorization": f"Bearer {gateway.key}"},
        timeout=30,
    )
    assert resp.status_code == 200 and resp.json()["output"][0]["content"][0]["text"] == "echo: plain"
