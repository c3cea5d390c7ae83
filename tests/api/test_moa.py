"""Mixture of agents: ``moa:<model>``, OpenPipe's ``openpipe:moa-*-v1`` models, and project
configurations at ``openpipe:moa-<slug>`` (candidates, critique, synthesis), through the real
``openai`` SDK and a real server; what each stage sent upstream is read back from the fake
provider, whose echo model makes every stage's answer predictable."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from conftest import KEY_RE, FakeProvider, Gateway
from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.errors import InvalidRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def tag() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def upstream(fake: FakeProvider, marker: str) -> list[dict[str, Any]]:
    """The bodies the fake received that mention ``marker``, in the order it received them."""
    return [r["body"] for r in fake.requests() if marker in json.dumps(r["body"])]


def stages(completion: Any) -> list[dict[str, Any]]:
    return list((completion.model_extra or {})["moa"]["stages"])


def words(body: dict[str, Any]) -> int:
    """The fake's prompt tokens: the words of every message (OpenAI shape)."""
    return sum(len(str(m.get("content") or "").split()) for m in body["messages"]) or 1


def is_synthesis(body: dict[str, Any]) -> bool:
    system = next((m for m in body.get("messages", []) if m["role"] == "system"), None)
    return system is not None and "<critique>" in str(system["content"])


def cli(gateway: Gateway, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``tunepipe …`` with the server's environment, wide enough that tables never wrap."""
    done = gateway.cli(*args, check=False, wide=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def other_key(gateway: Gateway) -> Iterator[str]:
    out = gateway.cli("projects", "create", f"moaother-{tag()}").stdout
    keys = KEY_RE.findall(out)
    assert len(keys) == 2, out
    yield keys[0]


def test_parse_model_moa_prefix_names_the_inner_model() -> None:
    ref = parse_model("moa:anthropic:claude-3-5-sonnet-20241022")
    assert (ref.kind, ref.name, ref.prefixed) == (RouteKind.MOA, "anthropic:claude-3-5-sonnet-20241022", True)
    assert parse_model("openpipe:moa-gpt-4o-v1").kind is RouteKind.FINE_TUNE
    for bad in ("moa:", "moa:moa:gpt-4o", "moa:openpipe:moa-team", "moa:openai:"):
        with pytest.raises(InvalidRequest) as info:
            parse_model(bad)
        assert info.value.param == "model"


def test_moa_model_runs_candidates_critique_and_synthesis(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = tag()
    messages = [{"role": "user", "content": f"name three colours {m}"}]
    r = gateway.client().chat.completions.create(model="moa:gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    candidates, critique, synthesis = upstream(fake_provider, m)
    assert candidates["model"] == "gpt-4o-mini" and candidates["n"] == 3 and candidates["temperature"] >= 0.7
    assert candidates["messages"] == messages
    drafts = [f"[{i}] echo: name three colours {m}" for i in range(3)]
    assert "n" not in critique and "tools" not in critique
    assert all(d in critique["messages"][-1]["content"] for d in drafts)
    # The synthesis answers the caller's conversation, with the drafts and critique beside it.
    assert synthesis["messages"][1:] == messages and "n" not in synthesis
    system = synthesis["messages"][0]
    assert system["role"] == "system" and all(d in system["content"] for d in drafts)
    assert f"echo: <conversation>\n[user]\nname three colours {m}" in system["content"]  # the critique
    assert r.choices[0].message.content == f"echo: name three colours {m}"
    assert r.model == "moa:gpt-4o-mini"
    prompt = sum(words(b) for b in (candidates, critique, synthesis))
    completion = 3 * 6 + len(f"echo: {critique['messages'][-1]['content']}".split()) + 5
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt, completion)
    assert r.usage.total_tokens == prompt + completion
    assert [(s["kind"], s["model"]) for s in stages(r)] == [
        ("candidates", "gpt-4o-mini"),
        ("critique", "gpt-4o-mini"),
        ("synthesis", "gpt-4o-mini"),
    ]
    assert stages(r)[0]["outputs"] == drafts and stages(r)[0]["layer"] == 1
    # Logged once, as the call the client made, costing every stage at gpt-4o-mini's price.
    log = gateway.wait_for_log(m)
    with gateway.http() as h:
        rows = h.get("/logs", params={"contains": m}).json()["data"]
    assert len(rows) == 1 and rows[0]["model"] == "moa:gpt-4o-mini"
    assert (rows[0]["inputTokens"], rows[0]["outputTokens"]) == (prompt, completion)
    assert rows[0]["cost"] == pytest.approx((prompt * 0.15 + completion * 0.60) / 1e6)
    assert log["respPayload"]["moa"]["cost"] == pytest.approx(rows[0]["cost"])


def test_moa_anthropic_asks_for_each_candidate_separately(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = tag()
    r = gateway.client().chat.completions.create(
        model="moa:anthropic:claude-3-5-sonnet-20241022", messages=[{"role": "user", "content": m}]
    )
    bodies = upstream(fake_provider, m)
    assert len(bodies) == 5 and all(b["model"] == "claude-3-5-sonnet-20241022" for b in bodies)
    assert all("n" not in b and b["temperature"] == 0.9 for b in bodies[:3])
    assert "<draft_3>" in bodies[3]["messages"][0]["content"][0]["text"]
    assert "<critique>" in bodies[4]["system"]
    assert r.choices[0].message.content == f"echo: {m}"
    assert [s["kind"] for s in stages(r)] == ["candidates"] * 3 + ["critique", "synthesis"]
    assert r.usage is not None and r.usage.prompt_tokens == sum(
        s["usage"]["prompt_tokens"] for s in stages(r)
    )
    # n > 1 is refused before any call is paid for (Anthropic cannot give several answers).
    other = tag()
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(
            model="moa:anthropic:claude-3-5-sonnet-20241022",
            messages=[{"role": "user", "content": other}],
            n=2,
        )
    assert info.value.body["param"] == "n"  # type: ignore[index]
    assert upstream(fake_provider, other) == []


def test_moa_carries_tools_through_to_a_tool_call(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = tag()
    r = gateway.client().chat.completions.create(
        model="moa:gpt-4o-mini",
        messages=[{"role": "user", "content": f"weather in Paris {m}"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="auto",
    )
    candidates, critique, synthesis = upstream(fake_provider, m)
    assert candidates["tools"] == [WEATHER] and candidates["n"] == 3
    # Tool-call candidates are shown to the critic as text; it gets no tools of its own.
    assert "tools" not in critique
    assert f'call get_weather({{"echo":"weather in Paris {m}"}})' in critique["messages"][-1]["content"]
    assert (synthesis["tools"], synthesis["tool_choice"]) == ([WEATHER], "auto")
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"echo": f"weather in Paris {m}"}


def test_moa_streams_the_synthesis(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = tag()
    text = f"tell me a long story please {m}"
    stream = gateway.client().chat.completions.create(
        model="moa:gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 5 and "".join(content) == f"echo: {text}"
    assert all(c.model == "moa:gpt-4o-mini" for c in chunks)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    bodies = upstream(fake_provider, m)
    assert [b.get("stream", False) for b in bodies] == [False, False, True]
    prompt = sum(words(b) for b in bodies)
    assert last.usage.prompt_tokens == prompt
    assert [s["kind"] for s in (last.model_extra or {})["moa"]["stages"]] == [
        "candidates",
        "critique",
        "synthesis",
    ]
    log = gateway.wait_for_log(m)
    assert log["statusCode"] == 200 and log["respPayload"]["usage"]["prompt_tokens"] == prompt
    # Without include_usage, no usage chunk reaches the client.
    quiet = gateway.client().chat.completions.create(
        model="moa:gpt-4o-mini", messages=[{"role": "user", "content": tag()}], stream=True
    )
    assert all(c.choices and c.usage is None for c in quiet)


def test_moa_openpipe_builtin_runs_over_its_openai_model(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    m = tag()
    r = gateway.client().chat.completions.create(
        model="openpipe:moa-gpt-4o-v1", messages=[{"role": "user", "content": m}]
    )
    bodies = upstream(fake_provider, m)
    assert [b["model"] for b in bodies] == ["gpt-4o"] * 3 and bodies[0]["n"] == 3
    assert r.model == "openpipe:moa-gpt-4o-v1" and r.choices[0].message.content == f"echo: {m}"


def test_moa_fails_only_when_no_candidate_came_back(gateway: Gateway, fake_provider: FakeProvider) -> None:
    slug = f"half-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        body = {"slug": slug, "proposers": ["fail-500", "gpt-4o-mini"], "aggregator": "gpt-4o-mini"}
        assert h.post("/moa-configs", json=body).status_code == 201
    m = tag()
    r = gateway.client().chat.completions.create(
        model=f"openpipe:moa-{slug}", messages=[{"role": "user", "content": m}]
    )
    assert r.choices[0].message.content == f"echo: {m}"
    failed = [s for s in stages(r) if s["model"] == "fail-500"]
    assert len(failed) == 1 and failed[0]["status"] == 502 and "outputs" not in failed[0]
    with pytest.raises(openai.InternalServerError) as info:
        gateway.client().chat.completions.create(
            model="moa:fail-500", messages=[{"role": "user", "content": m}]
        )
    assert info.value.status_code == 502


def test_moa_project_config_runs_layers_of_proposers(gateway: Gateway, fake_provider: FakeProvider) -> None:
    slug = f"team-{uuid.uuid4().hex[:8]}"
    config = {
        "slug": slug,
        "proposers": ["gpt-4o-mini", "anthropic:claude-3-5-haiku-20241022"],
        "candidates": 2,
        "layers": 2,
        "aggregator": "gpt-4o",
        "temperature": 1.1,
    }
    with gateway.http() as h:
        r = h.post("/moa-configs", json=config)
    assert r.status_code == 201, r.text
    m = tag()
    answer = gateway.client().chat.completions.create(
        model=f"openpipe:moa-{slug}",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": m}],
    )
    bodies = upstream(fake_provider, m)
    assert len(bodies) == 8
    mini = [b for b in bodies if b["model"] == "gpt-4o-mini"]
    haiku = [b for b in bodies if b["model"] == "claude-3-5-haiku-20241022"]
    aggregator = [b for b in bodies if b["model"] == "gpt-4o"]
    assert [b["n"] for b in mini] == [2, 2] and all(b["temperature"] == 1.1 for b in mini + haiku)
    assert len(haiku) == 4 and all("n" not in b for b in haiku)
    # Layer 1 sees the conversation; layer 2 also sees layer 1's four answers as drafts.
    assert mini[0]["messages"][0]["content"] == "Be brief."
    assert mini[1]["messages"][0]["content"].startswith("Be brief.\n\n")
    assert (
        "<draft_4>" in mini[1]["messages"][0]["content"]
        and "<critique>" not in mini[1]["messages"][0]["content"]
    )
    assert sum("<draft_4>" in b["system"] for b in haiku) == 2
    critique, synthesis = aggregator
    assert "<draft_4>" in critique["messages"][-1]["content"]
    assert is_synthesis(synthesis) and synthesis["messages"][1:] == [{"role": "user", "content": m}]
    assert answer.model == f"openpipe:moa-{slug}" and answer.choices[0].message.content == f"echo: {m}"
    kinds = [(s["kind"], s.get("layer")) for s in stages(answer)]
    assert (
        sorted(k for k in kinds if k[0] == "candidates") == [("candidates", 1)] * 3 + [("candidates", 2)] * 3
    )
    assert kinds[-2:] == [("critique", None), ("synthesis", None)]


def test_moa_configs_crud_and_validation(gateway: Gateway, other_key: str) -> None:
    slug = f"crud-{uuid.uuid4().hex[:8]}"
    with gateway.http() as h:
        created = h.post("/moa-configs", json={"slug": slug, "proposers": ["gpt-4o-mini"]})
        assert created.status_code == 201, created.text
        view = created.json()
        assert (view["object"], view["model"], view["aggregator"]) == (
            "moa_config",
            f"openpipe:moa-{slug}",
            "gpt-4o-mini",
        )
        assert (view["candidates"], view["layers"], view["temperature"]) == (3, 1, 0.9)
        assert view["critique_prompt"] and view["synthesis_prompt"]
        assert slug in [c["slug"] for c in h.get("/moa-configs").json()["data"]]
        assert h.get(f"/moa-configs/{slug}").json()["id"] == view["id"]
        assert h.post("/moa-configs", json={"slug": slug, "proposers": ["gpt-4o"]}).status_code == 409
        put = h.put(f"/moa-configs/{slug}", json={"proposers": ["gpt-4o", "gpt-4o-mini"], "candidates": 1})
        assert (
            put.status_code == 200 and put.json()["candidates"] == 1 and put.json()["aggregator"] == "gpt-4o"
        )
        assert h.put("/moa-configs/nope", json={"proposers": ["gpt-4o"]}).status_code == 404

        bad: list[tuple[dict[str, Any], str]] = [
            ({"slug": "Bad_Slug", "proposers": ["gpt-4o"]}, "slug"),
            ({"slug": "gpt-4o-v1", "proposers": ["gpt-4o"]}, "slug"),
            ({"slug": "x", "proposers": []}, "proposers"),
            ({"slug": "x", "proposers": ["gpt-4o"] * 6}, "proposers"),
            ({"slug": "x", "proposers": ["gpt-4o", "openpipe:nowhere/model"]}, "proposers[1]"),
            ({"slug": "x", "proposers": ["moa:gpt-4o"]}, "proposers[0]"),
            ({"slug": "x", "proposers": ["gpt-4o"], "aggregator": "openpipe:no-such-model"}, "aggregator"),
            ({"slug": "x", "proposers": ["gpt-4o"], "candidates": 6}, "candidates"),
            ({"slug": "x", "proposers": ["gpt-4o"], "layers": 0}, "layers"),
            ({"slug": "x", "proposers": ["gpt-4o"], "temperature": 3}, "temperature"),
            ({"slug": "x", "proposers": ["gpt-4o"], "critique_prompt": " "}, "critique_prompt"),
        ]
        for body, param in bad:
            r = h.post("/moa-configs", json=body)
            assert (r.status_code, r.json()["error"]["param"]) == (400, param), (body, r.text)
    with gateway.http(gateway.read_only_key) as h:
        assert h.get(f"/moa-configs/{slug}").status_code == 200
        assert h.post("/moa-configs", json={"slug": "ro", "proposers": ["gpt-4o"]}).status_code == 403
        assert h.delete(f"/moa-configs/{slug}").status_code == 403
    # Another project sees nothing of it and cannot call it.
    with gateway.http(other_key) as h:
        assert h.get(f"/moa-configs/{slug}").status_code == 404
        assert slug not in [c["slug"] for c in h.get("/moa-configs").json()["data"]]
    with pytest.raises(openai.NotFoundError):
        gateway.client(other_key).chat.completions.create(
            model=f"openpipe:moa-{slug}", messages=[{"role": "user", "content": "hi"}]
        )
    with gateway.http() as h:
        assert h.delete(f"/moa-configs/{slug}").status_code == 200
        assert h.get(f"/moa-configs/{slug}").status_code == 404
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(
            model=f"openpipe:moa-{slug}", messages=[{"role": "user", "content": "hi"}]
        )


def test_moa_model_names_are_checked_like_any_model(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(
            model="moa:moa:gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError):  # plain OpenAI inside, as for `gpt-4o`
        gateway.client(gateway.read_only_key).chat.completions.create(
            model="moa:gpt-4o", messages=[{"role": "user", "content": "x"}]
        )


def test_moa_relabels_a_dataset_with_the_synthesis(gateway: Gateway, fake_provider: FakeProvider) -> None:
    m = tag()
    rows = [
        {"messages": [{"role": "user", "content": f"q{i} {m}"}, {"role": "assistant", "content": f"old {i}"}]}
        for i in range(2)
    ]
    with gateway.http() as h:
        ds = h.post("/datasets", json={"name": f"moa-{m}"}).json()["id"]
        assert h.post(f"/datasets/{ds}/entries", json={"entries": rows}).json()["entries_created"] == 2
        job = h.post(f"/datasets/{ds}/relabel", json={"model": "moa:gpt-4o-mini"})
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 30
        while (state := h.get(f"/datasets/{ds}/jobs/{job.json()['id']}").json())["status"] not in (
            "DONE",
            "ERROR",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (state["status"], state["created"]) == ("DONE", 2), state
        got = h.get(f"/datasets/{ds}/entries").json()["data"]
    outputs = sorted(e["output"]["content"] for e in got)
    assert outputs == [f"echo: q0 {m}", f"echo: q1 {m}"]
    assert all(set(e["output"]) <= {"role", "content"} for e in got)
    bodies = upstream(fake_provider, m)
    assert len(bodies) == 6 and sum(b.get("n") == 3 for b in bodies) == 2
    assert sum(is_synthesis(b) for b in bodies) == 2


def test_moa_cli_creates_lists_shows_and_deletes(gateway: Gateway) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    made = cli(
        gateway,
        "moa",
        "create",
        slug,
        "--proposer",
        "gpt-4o-mini",
        "--proposer",
        "gpt-4o",
        "--candidates",
        "2",
    )
    assert f"openpipe:moa-{slug}" in made.stdout
    assert f"moa-{slug}" in cli(gateway, "moa", "list").stdout
    shown = cli(gateway, "moa", "show", slug).stdout
    assert "gpt-4o-mini, gpt-4o" in shown and "2 per proposer" in shown
    bad = cli(gateway, "moa", "create", "other", "--proposer", "moa:gpt-4o", check=False)
    assert bad.returncode != 0 and "proposers[0]" in bad.stdout + bad.stderr
    # The server drops its cached settings on the CLI's change notice.
    deadline = time.monotonic() + 10
    while True:
        try:
            r = gateway.client().chat.completions.create(
                model=f"openpipe:moa-{slug}", messages=[{"role": "user", "content": "hi"}]
            )
            break
        except openai.NotFoundError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert r.model == f"openpipe:moa-{slug}"
    cli(gateway, "moa", "delete", slug)
    with gateway.http() as h:
        assert h.get(f"/moa-configs/{slug}").status_code == 404
