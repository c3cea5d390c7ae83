"""Criteria through the real SDKs on both backends: versions and pinning, the 404s (before any
upstream call), the offline judge, criteria at request time (failure kept per criterion,
best-of-n order, the streamed results chunk, logprob scores, judge calls logged and results
filterable), and isolation between projects."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import openai
import pytest
from openpipe import OpenAI as OpenPipeOpenAI
from openpipe.client import OpenPipe

from conftest import KEY_RE, FakeProvider, Gateway


def tag() -> str:
    return uuid.uuid4().hex[:10]


def create(
    gateway: Gateway,
    name: str,
    judge_model: str,
    instructions: str = "Pass polite answers.",
    key: str | None = None,
) -> dict[str, Any]:
    with gateway.http(key) as h:
        r = h.post("/criteria", json={"name": name, "instructions": instructions, "judge_model": judge_model})
    assert r.status_code == 201, r.text
    return dict(r.json())


def other_key(gateway: Gateway) -> str:
    return KEY_RE.findall(gateway.cli("projects", "create", f"crit-{tag()}").stdout)[0]


def ask(gateway: Gateway, criteria: list[str], text: str = "hello", **kwargs: Any) -> Any:
    return gateway.client().chat.completions.create(
        model=kwargs.pop("model", "gpt-4o-mini"),
        messages=[{"role": "user", "content": text}],
        extra_headers={"op-criteria": json.dumps(criteria)},
        **kwargs,
    )


def results_of(choice: Any) -> dict[str, Any]:
    return dict(choice.model_extra["criteria_results"])


def test_criteria_versions_are_immutable_and_pinnable(gateway: Gateway) -> None:
    name = f"polite-{tag()}"
    v1 = create(gateway, name, "anthropic:judge-polite")
    v2 = create(gateway, name, "anthropic:judge-first", instructions="Anything goes.")
    assert (v1["version"], v2["version"]) == (1, 2)
    assert v1["id"] == f"{name}@v1" and v1["judge_model"] == "anthropic:judge-polite" and v1["created"]
    with gateway.http() as h:
        assert h.get(f"/criteria/{name}").json()["version"] == 2
        pinned = h.get(f"/criteria/{name}@v1").json()
        assert (pinned["version"], pinned["instructions"]) == (1, "Pass polite answers.")
        listed = [c for c in h.get("/criteria").json()["data"] if c["name"] == name]
        assert [c["version"] for c in listed] == [2]
        assert [c["version"] for c in h.get(f"/criteria/{name}/versions").json()["data"]] == [1, 2]
    # At request time: the pinned version judges with its own judge, the bare name with the latest.
    reply = ask(gateway, [f"{name}@v1"], text="just do it")
    assert results_of(reply.choices[0])[name]["score"] == 0
    reply = ask(gateway, [name], text="just do it")
    assert results_of(reply.choices[0])[name]["score"] == 1
    with gateway.http() as h:
        assert h.delete(f"/criteria/{name}@v2").json()["deleted"] is True
        assert h.get(f"/criteria/{name}").json()["version"] == 1
        assert h.delete(f"/criteria/{name}").json()["versions_deleted"] == 1
        assert h.get(f"/criteria/{name}").status_code == 404


def test_criteria_bad_bodies_are_400s_and_read_only_keys_cannot_create(gateway: Gateway) -> None:
    with gateway.http() as h:
        for body, param in (
            ({"name": "bad name!", "instructions": "x", "judge_model": "judge-json"}, "name"),
            ({"name": "ok", "instructions": "x", "judge_model": ""}, "judge_model"),
            ({"name": "ok", "instructions": "x", "judge_model": "j", "variables": ["nope"]}, "variables"),
            ({"name": "ok", "judge_model": "judge-json"}, "instructions"),
        ):
            r = h.post("/criteria", json=body)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["param"] == param and r.json()["code"] == "BAD_REQUEST"
    with gateway.http(gateway.read_only_key) as h:
        r = h.post("/criteria", json={"name": "ro", "instructions": "x", "judge_model": "judge-json"})
        assert r.status_code == 403


def test_unknown_criterion_is_404_before_any_upstream_call(
    gateway: Gateway, fake_provider: FakeProvider
) -> None:
    name = f"known-{tag()}"
    create(gateway, name, "judge-polite")
    marker = f"never-sent-{tag()}"
    for ids, message in (
        ([f"missing-{marker}"], f"Criterion missing-{marker} not found"),
        ([name, f"{name}@v7"], f"Criterion version 7 not found for criterion {name}"),
        ([f"{name}@fake-version"], f"Criterion version fake-version not found for criterion {name}"),
    ):
        with pytest.raises(openai.NotFoundError) as err:
            ask(gateway, ids, text=marker)
        assert err.value.body["message"] == message  # type: ignore[index]
    assert not [r for r in fake_provider.requests() if marker in json.dumps(r["body"])]
    logged = gateway.wait_for_log(marker)
    assert logged["statusCode"] == 404


def test_offline_judge_through_the_openpipe_sdk(gateway: Gateway) -> None:
    name = f"json-{tag()}"
    create(gateway, name, "anthropic:judge-json", instructions="Pass a JSON object.")
    op = OpenPipe(api_key=gateway.key, base_url=gateway.base_url)
    good = op.get_criterion_judgement(
        criterion_id=name,
        input={"messages": [{"role": "user", "content": "give json"}]},
        output={"role": "assistant", "content": '{"a": 1}'},
    )
    bad = op.get_criterion_judgement(
        criterion_id=f"{name}@v1",
        input={"messages": [{"role": "user", "content": "give json"}]},
        output={"role": "assistant", "content": "not json"},
    )
    assert (good.score, bad.score) == (1, 0)  # a forced tool call gives a hard verdict
    assert good.explanation and "judge-json" in good.explanation
    with gateway.http() as h:
        r = h.post(
            "/criteria/judge",
            json={
                "criterion_id": "nope",
                "input": {"messages": [{"role": "user", "content": "x"}]},
                "output": {"role": "assistant", "content": "y"},
            },
        )
        assert r.status_code == 404 and r.json()["message"] == "Criterion nope not found"
        create(gateway, f"{name}-broken", "judge-garbage")
        r = h.post(
            "/criteria/judge",
            json={
                "criterion_id": f"{name}-broken",
                "input": {"messages": [{"role": "user", "content": "x"}]},
                "output": {"role": "assistant", "content": "y"},
            },
        )
        assert r.status_code == 502 and "no PASS or FAIL verdict" in r.json()["message"]


def test_judge_failure_keeps_the_completion_and_spoils_only_its_criterion(gateway: Gateway) -> None:
    t = tag()
    for name, judge in (
        (f"ok-{t}", "judge-first"),
        (f"down-{t}", "fail-503"),
        (f"vague-{t}", "judge-garbage"),
    ):
        create(gateway, name, judge)
    reply = ask(gateway, [f"ok-{t}", f"down-{t}", f"vague-{t}"], text=f"keep me {t}")
    assert reply.choices[0].message.content == f"echo: keep me {t}"
    results = results_of(reply.choices[0])
    assert results[f"ok-{t}"]["status"] == "success" and results[f"ok-{t}"]["score"] == pytest.approx(0.9)
    assert results[f"down-{t}"]["status"] == "error" and results[f"down-{t}"]["errorCode"] == 502
    assert "fake failure 503" in results[f"down-{t}"]["errorMessage"]
    assert results[f"vague-{t}"] == {
        "status": "error",
        "errorCode": 502,
        "errorMessage": "The judge's answer holds no PASS or FAIL verdict: 'I cannot decide.'",
    }


def test_best_of_n_sorts_choices_by_combined_score(gateway: Gateway) -> None:
    t = tag()
    create(gateway, f"pick2-{t}", "anthropic:judge-contains-[2]")
    create(gateway, f"pick1-{t}", "anthropic:judge-contains-[1]")
    reply = ask(gateway, [f"pick2-{t}"], text="choose", n=3)
    contents = [c.message.content for c in reply.choices]
    assert contents[0].startswith("[2]") and sorted(contents) == [f"[{i}] echo: choose" for i in range(3)]
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert [results_of(c)[f"pick2-{t}"]["score"] for c in reply.choices] == [1, 0, 0]
    both = ask(gateway, [f"pick1-{t}", f"pick2-{t}"], text="choose", n=3)
    assert [c.message.content[:3] for c in both.choices][:2] in (["[1]", "[2]"], ["[2]", "[1]"])
    assert both.choices[2].message.content.startswith("[0]")


def test_streamed_completion_gets_one_criteria_chunk_before_done(gateway: Gateway) -> None:
    t = tag()
    create(gateway, f"s-{t}", "judge-contains-echo")
    stream = gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"stream {t}"}],
        stream=True,
        n=2,
        stream_options={"include_usage": True},
        extra_headers={"op-criteria": json.dumps([f"s-{t}"])},
    )
    chunks = [c.to_dict() for c in stream]
    with_results = [c for c in chunks if any("criteria_results" in ch for ch in c["choices"])]
    assert len(with_results) == 1
    assert {ch["index"] for ch in with_results[0]["choices"]} == {0, 1}
    for ch in with_results[0]["choices"]:
        assert ch["criteria_results"][f"s-{t}"]["status"] == "success"
        assert ch["criteria_results"][f"s-{t}"]["score"] == pytest.approx(0.9)
    text = "".join(
        ch["delta"].get("content") or "" for c in chunks for ch in c["choices"] if ch["index"] == 0
    )
    assert text == f"[0] echo: stream {t}"
    logged = gateway.wait_for_log(f"stream {t}")
    assert logged["respPayload"]["choices"][0]["criteria_results"][f"s-{t}"]["status"] == "success"


def test_judge_calls_are_logged_under_the_judged_call_and_results_filter_logs(gateway: Gateway) -> None:
    t = tag()
    create(gateway, f"pol-{t}", "judge-polite")
    ask(gateway, [f"pol-{t}"], text=f"please help {t}", metadata={"run": t})
    ask(gateway, [f"pol-{t}"], text=f"go away {t}", metadata={"run": t})
    with gateway.http() as h:
        deadline = time.monotonic() + 5
        while True:
            judged = h.get("/logs", params={"metadata.run": t, "source": "proxy"}).json()["data"]
            judges = h.get("/logs", params={"source": "judge", "metadata.run": t}).json()["data"]
            if len(judged) == 2 and len(judges) == 2:
                break
            assert time.monotonic() < deadline, (judged, judges)
            time.sleep(0.05)
        passed = h.get("/logs", params={f"criteria.pol-{t}": "pass", "metadata.run": t}).json()["data"]
        failed = h.get("/logs", params={f"criteria.pol-{t}": "fail", "metadata.run": t}).json()["data"]
        assert len(passed) == len(failed) == 1 and passed[0]["id"] != failed[0]["id"]
        assert passed[0]["criteriaResults"]["0"][f"pol-{t}"]["score"] == pytest.approx(0.9)
        children = h.get("/logs", params={"parent_id": passed[0]["id"]}).json()["data"]
        assert len(children) == 1 and children[0]["source"] == "judge"
        assert (
            children[0]["model"] == "judge-polite" and children[0]["metadata"]["$criterion"] == f"pol-{t}@v1"
        )
        assert children[0]["inputTokens"] > 0 and children[0]["outputTokens"] > 0
        r = h.get("/logs", params={f"criteria.pol-{t}": "maybe"})
        assert r.status_code == 400
    # The latest call is the judged one, never its judge's.
    assert "go away" in json.dumps(gateway.latest()["reqPayload"])


def test_criteria_through_the_openpipe_sdk_option(gateway: Gateway) -> None:
    t = tag()
    create(gateway, f"sdk-{t}", "anthropic:judge-polite")
    client = OpenPipeOpenAI(api_key="unused", openpipe={"api_key": gateway.key, "base_url": gateway.base_url})
    reply = client.chat.completions.create(
        model="openai:gpt-4o-mini",
        messages=[{"role": "user", "content": "thank you"}],
        openpipe={"criteria": [f"sdk-{t}"]},
    )
    assert results_of(reply.choices[0])[f"sdk-{t}"] == {
        "status": "success",
        "score": 1.0,
        "explanation": "judge-polite looked at 'echo: thank you'.",
    }


def test_criteria_belong_to_their_project(gateway: Gateway) -> None:
    name = f"mine-{tag()}"
    create(gateway, name, "judge-polite")
    stranger = other_key(gateway)
    with gateway.http(stranger) as h:
        assert h.get(f"/criteria/{name}").status_code == 404
        assert h.delete(f"/criteria/{name}").status_code == 404
        assert name not in json.dumps(h.get("/criteria").json())
        assert (
            h.post(
                f"/criteria/{name}/alignment",
                json={
                    "rows": [
                        {
                            "messages": [{"role": "user", "content": "x"}],
                            "output": {"role": "assistant", "content": "y"},
                        }
                    ]
                },
            ).status_code
            == 404
        )
    with pytest.raises(openai.NotFoundError):
        gateway.client(stranger).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"op-criteria": json.dumps([name])},
        )
    # Its own criterion of the same name is a different one.
    create(gateway, name, "judge-first", key=stranger)
    with gateway.http(stranger) as h:
        assert h.get(f"/criteria/{name}").json()["judge_model"] == "judge-first"
    with gateway.http() as h:
        assert h.get(f"/criteria/{name}").json()["judge_model"] == "judge-polite"
