"""OpenPipe's log endpoints through the official ``openpipe`` SDK client: ``report``,
``report_anthropic``, ``update_log_metadata``, ``update_log_tags``, the local-testing helper and
the deprecated ``check_cache``."""

import uuid
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from openpipe.api_client.core.api_error import ApiError
from openpipe.client import OpenPipe

from conftest import Gateway

SDK_TAGS = {"$sdk": "python", "$sdk.version": version("openpipe")}
T0 = 1_720_000_000_000


def marker() -> str:
    return f"m{uuid.uuid4().hex}"


def op(gateway: Gateway, key: str | None = None) -> OpenPipe:
    return OpenPipe(api_key=key or gateway.key, base_url=gateway.base_url)


def logs(gateway: Gateway, **params: Any) -> list[dict[str, Any]]:
    with gateway.http() as h:
        r = h.get("/logs", params={"bodies": "true", "limit": 500, **params})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def only_log(gateway: Gateway, text: str) -> dict[str, Any]:
    found = logs(gateway, contains=text)
    assert len(found) == 1, found
    return found[0]


def completion(
    text: str, *, prompt: int = 100, completion_tokens: int = 20, finish: str = "stop"
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{text}",
        "object": "chat.completion",
        "created": 1720000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"answer {text}"},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + 20,
        },
    }


def report(gateway: Gateway, text: str, *, model: str = "gpt-4o", at: int = T0, **kw: Any) -> None:
    req = {"model": model, "messages": [{"role": "user", "content": f"question {text}"}]}
    if "metadata" in kw:
        req["metadata"] = kw.pop("metadata")
    result = op(gateway).report(
        requested_at=at,
        received_at=at + kw.pop("duration", 100),
        req_payload=req,
        resp_payload=kw.pop("resp", completion(text)),
        status_code=kw.pop("status", 200),
        **kw,
    )
    assert result.status == "ok"


def test_report_stores_call_with_derived_fields(gateway: Gateway) -> None:
    text = marker()
    resp = completion(text, prompt=1200, completion_tokens=300, finish="length")
    result = op(gateway).report(
        requested_at=T0,
        received_at=T0 + 1234,
        req_payload={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": f"question {text}"}],
            "metadata": {"prompt_id": "rep"},
        },
        resp_payload=resp,
        status_code=200,
        tags={"num": 3, "flag": True, "off": False, "gone": None, "empty": "", "bad name!": "x"},
    )
    assert result.status == "ok"
    log = only_log(gateway, text)
    assert log["source"] == "report"
    assert log["model"] == "gpt-4o"
    assert (log["requestedAt"], log["receivedAt"], log["durationMs"]) == (T0, T0 + 1234, 1234)
    assert (log["inputTokens"], log["outputTokens"]) == (1200, 300)
    assert log["cost"] == pytest.approx((1200 * 2.50 + 300 * 10.00) / 1e6, rel=1e-12)
    assert log["cost"] == pytest.approx(0.006, rel=1e-12)
    assert log["finishReason"] == "length"
    assert log["completionId"] == f"chatcmpl-{text}"
    assert log["statusCode"] == 200
    assert log["metadata"] == {
        "prompt_id": "rep",
        "num": "3",
        "flag": "true",
        "off": "false",
        "bad_name_": "x",
        **SDK_TAGS,
    }
    assert log["respPayload"] == resp
    assert log["reqPayload"]["metadata"] == {"prompt_id": "rep"}


def test_report_error_keeps_status_and_message(gateway: Gateway) -> None:
    text = marker()
    error_body = {"error": {"message": f"rate limited {text}", "type": "rate_limit_error"}}
    report(gateway, text, status=429, resp=error_body, error_message="rate limited")
    log = only_log(gateway, text)
    assert (log["statusCode"], log["errorMessage"]) == (429, "rate limited")
    assert log["respPayload"] == error_body
    assert log["inputTokens"] is None and log["cost"] is None and log["finishReason"] is None


def test_report_without_times_uses_now_and_zero_duration(gateway: Gateway) -> None:
    text = marker()
    with gateway.http() as h:
        r = h.post(
            "/report",
            json={"reqPayload": {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}},
        )
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    log = only_log(gateway, text)
    assert log["durationMs"] == 0
    assert log["requestedAt"] > T0
    assert log["statusCode"] is None


def test_report_accepts_fractional_millisecond_times(gateway: Gateway) -> None:
    # The API types times as "number"; `time.time() * 1000` is a natural thing to send.
    text = marker()
    result = op(gateway).report(
        requested_at=T0 + 0.25,
        received_at=T0 + 500.75,
        req_payload={"model": "gpt-4o", "messages": [{"role": "user", "content": text}]},
        resp_payload=completion(text),
        status_code=200,
    )
    assert result.status == "ok"
    log = only_log(gateway, text)
    assert log["requestedAt"] == T0
    assert log["receivedAt"] == T0 + 500


def test_report_anthropic_is_stored_in_openai_shape(gateway: Gateway) -> None:
    text = marker()
    result = op(gateway).report_anthropic(
        requested_at=T0,
        received_at=T0 + 800,
        req_payload={
            "model": "claude-3-5-sonnet-20241022",
            "max_tokens": 256,
            "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": f"salut {text}"}]}],
        },
        resp_payload={
            "id": f"msg_{text}",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
            "content": [{"type": "text", "text": f"Bonjour {text}"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
        status_code=200,
        metadata={"prompt_id": "anth"},
    )
    assert result.status == "ok"
    log = only_log(gateway, text)
    assert log["source"] == "report-anthropic"
    assert log["model"] == "anthropic:claude-3-5-sonnet-20241022"
    assert log["respPayload"]["choices"][0]["message"]["content"] == f"Bonjour {text}"
    assert log["respPayload"]["object"] == "chat.completion"
    assert log["reqPayload"]["messages"][0] == {"role": "system", "content": "be brief"}
    assert log["reqPayload"]["messages"][1]["role"] == "user"
    assert log["reqPayload"]["max_tokens"] == 256
    assert log["finishReason"] == "stop"
    assert log["completionId"] == f"msg_{text}"
    assert (log["inputTokens"], log["outputTokens"]) == (10, 5)
    assert log["cost"] == pytest.approx((10 * 3.0 + 5 * 15.0) / 1e6, rel=1e-12)
    assert log["durationMs"] == 800
    assert log["metadata"] == {"prompt_id": "anth", **SDK_TAGS}


def test_report_anthropic_error_is_kept_as_sent(gateway: Gateway) -> None:
    text = marker()
    error = {"type": "error", "error": {"type": "overloaded_error", "message": f"Overloaded {text}"}}
    op(gateway).report_anthropic(
        requested_at=T0,
        received_at=T0 + 5,
        req_payload={
            "model": "claude-3-haiku",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        },
        resp_payload=error,
        status_code=529,
        error_message="Overloaded",
    )
    log = only_log(gateway, text)
    assert (log["statusCode"], log["errorMessage"]) == (529, "Overloaded")
    assert log["respPayload"] == error


def test_update_log_metadata_filters_are_anded(gateway: Gateway) -> None:
    model = f"upd-{marker()}"
    texts = [marker() for _ in range(4)]
    report(gateway, texts[0], model=model, metadata={"prompt_id": "a", "keep": "1"})
    report(gateway, texts[1], model=model, metadata={"prompt_id": "a"})
    report(gateway, texts[2], model=model, metadata={"prompt_id": "b"})
    report(gateway, texts[3], model=f"{model}-other", metadata={"prompt_id": "a"})
    result = op(gateway).update_log_metadata(
        filters=[{"field": "model", "equals": model}, {"field": "metadata.prompt_id", "equals": "a"}],
        metadata={"relabel": "yes", "prompt_id": None},
    )
    assert result.matched_logs == 2
    assert only_log(gateway, texts[0])["metadata"] == {"keep": "1", "relabel": "yes", **SDK_TAGS}
    assert only_log(gateway, texts[1])["metadata"] == {"relabel": "yes", **SDK_TAGS}
    assert only_log(gateway, texts[2])["metadata"] == {"prompt_id": "b", **SDK_TAGS}
    assert only_log(gateway, texts[3])["metadata"] == {"prompt_id": "a", **SDK_TAGS}


def test_update_log_metadata_by_completion_id(gateway: Gateway) -> None:
    text = marker()
    report(gateway, text)
    result = op(gateway).update_log_metadata(
        filters=[{"field": "completionId", "equals": f"chatcmpl-{text}"}], metadata={"reviewed": "true"}
    )
    assert result.matched_logs == 1
    assert only_log(gateway, text)["metadata"]["reviewed"] == "true"


def test_update_log_metadata_number_filter_matches_stringified_value(gateway: Gateway) -> None:
    text, model = marker(), f"num-{marker()}"
    report(gateway, text, model=model, tags={"attempt": 3})
    result = op(gateway).update_log_metadata(
        filters=[{"field": "model", "equals": model}, {"field": "metadata.attempt", "equals": 3}],
        metadata={"seen": "1"},
    )
    assert result.matched_logs == 1


def test_update_log_metadata_no_match_returns_zero(gateway: Gateway) -> None:
    result = op(gateway).update_log_metadata(
        filters=[{"field": "model", "equals": f"nothing-{marker()}"}], metadata={"x": "y"}
    )
    assert result.matched_logs == 0


def test_update_log_metadata_unknown_filter_field_is_bad_request(gateway: Gateway) -> None:
    with pytest.raises(ApiError) as info:
        op(gateway).update_log_metadata(filters=[{"field": "statusCode", "equals": 200}], metadata={"x": "y"})
    assert info.value.status_code == 400
    assert "Unsupported filter field" in info.value.body["message"]


def test_update_log_metadata_key_too_long_is_bad_request(gateway: Gateway) -> None:
    text = marker()
    report(gateway, text)
    with pytest.raises(ApiError) as info:
        op(gateway).update_log_metadata(
            filters=[{"field": "completionId", "equals": f"chatcmpl-{text}"}], metadata={"k" * 201: "v"}
        )
    assert info.value.status_code == 400
    assert only_log(gateway, text)["metadata"] == SDK_TAGS


def test_update_log_tags_uses_tags_prefix_and_stringifies(gateway: Gateway) -> None:
    text, model = marker(), f"tags-{marker()}"
    report(gateway, text, model=model, tags={"prompt_id": "t1", "old": "x"})
    result = op(gateway).update_log_tags(
        filters=[{"field": "model", "equals": model}, {"field": "tags.prompt_id", "equals": "t1"}],
        tags={"score": 5, "ok": True, "old": None},
    )
    assert result.matched_logs == 1
    assert only_log(gateway, text)["metadata"] == {"prompt_id": "t1", "score": "5", "ok": "true", **SDK_TAGS}


def test_update_log_tags_deletes_a_tag_by_the_name_it_was_stored_under(gateway: Gateway) -> None:
    # Tag names are cleaned to [A-Za-z0-9_$.] when set; a null deletes by the same cleaned name.
    text, model = marker(), f"tags-{marker()}"
    report(gateway, text, model=model, tags={"my-tag": "x", "keep": "y"})
    assert only_log(gateway, text)["metadata"] == {"my_tag": "x", "keep": "y", **SDK_TAGS}
    result = op(gateway).update_log_tags(filters=[{"field": "model", "equals": model}], tags={"my-tag": None})
    assert result.matched_logs == 1
    assert only_log(gateway, text)["metadata"] == {"keep": "y", **SDK_TAGS}


def test_local_testing_only_latest_logged_call_via_sdk(gateway: Gateway) -> None:
    text = marker()
    op(gateway).report(
        req_payload={"model": "gpt-4o", "messages": [{"role": "user", "content": text}]},
        resp_payload=completion(text),
        status_code=200,
        tags={"prompt_id": "latest"},
    )
    latest = op(gateway).base_client.local_testing_only_get_latest_logged_call()
    assert latest is not None
    assert latest.req_payload["messages"][0]["content"] == text
    assert latest.resp_payload == completion(text)
    assert latest.status_code == 200
    assert latest.cache_hit is False
    assert latest.error_message is None
    assert latest.metadata == latest.tags == {"prompt_id": "latest", **SDK_TAGS}
    assert latest.created_at.tzinfo is not None


def test_latest_logged_call_is_the_last_received_not_the_latest_requested_at(gateway: Gateway) -> None:
    first, second = marker(), marker()
    for text, at in ((first, T0 + 60_000), (second, T0)):  # the second report claims an older time
        op(gateway).report(
            requested_at=at,
            received_at=at + 10,
            req_payload={"model": "gpt-4o", "messages": [{"role": "user", "content": text}]},
            resp_payload=completion(text),
            status_code=200,
        )
    latest = op(gateway).base_client.local_testing_only_get_latest_logged_call()
    assert latest is not None and latest.req_payload["messages"][0]["content"] == second


def test_check_cache_misses_when_nothing_is_stored(gateway: Gateway) -> None:
    result = op(gateway).base_client.check_cache(
        requested_at=T0, req_payload={"model": "gpt-4o", "messages": []}, tags={"a": "b"}
    )
    assert result.resp_payload is None


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.report(req_payload={"model": "gpt-4o"}, status_code=200),
        lambda c: c.report_anthropic(req_payload={"model": "claude-3-haiku"}, status_code=200),
        lambda c: c.update_log_metadata(filters=[{"field": "model", "equals": "x"}], metadata={"a": "b"}),
        lambda c: c.update_log_tags(filters=[{"field": "model", "equals": "x"}], tags={"a": "b"}),
    ],
    ids=["report", "report_anthropic", "update_log_metadata", "update_log_tags"],
)
def test_report_endpoints_read_only_key_is_forbidden(gateway: Gateway, call: Any) -> None:
    with pytest.raises(ApiError) as info:
        call(op(gateway, gateway.read_only_key))
    assert info.value.status_code == 403
    assert info.value.body["code"] == "FORBIDDEN"
    assert "read-only API key" in info.value.body["message"]


def test_report_endpoints_read_only_key_may_read(gateway: Gateway) -> None:
    client = op(gateway, gateway.read_only_key)
    assert client.base_client.check_cache(requested_at=T0).resp_payload is None
    assert client.base_client.local_testing_only_get_latest_logged_call() is not None


def test_report_invalid_body_is_bad_request_with_issues(gateway: Gateway) -> None:
    with gateway.http() as h:
        r = h.post("/report", json={"requestedAt": "yesterday", "reqPayload": {}})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "BAD_REQUEST"
    assert body["message"].startswith("Input validation failed")
    assert body["issues"]


def test_report_unknown_key_is_unauthorized(gateway: Gateway) -> None:
    r = httpx.post(f"{gateway.base_url}/report", json={}, headers={"Authorization": "Bearer opk_bogus"})
    assert r.status_code == 401


def test_report_values_too_big_for_their_columns_are_still_stored(gateway: Gateway) -> None:
    # SQLite stores anything; Postgres enforces VARCHAR sizes and 32-bit integers. A call must be
    # logged on both rather than refused by one.
    text = marker()
    with gateway.http() as h:
        r = h.post(
            "/report",
            json={
                "requestedAt": 0,
                "receivedAt": T0,  # a 54-year "duration"
                "reqPayload": {
                    "model": "m" * 400,
                    "messages": [{"role": "user", "content": text}],
                    "metadata": {"k" * 250: "long key", "short": "ok"},
                },
                "respPayload": {
                    "id": "i" * 250,
                    "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "f" * 40}],
                    "usage": {"prompt_tokens": 3_000_000_000, "completion_tokens": 2},
                },
                "statusCode": 200,
            },
        )
    assert r.status_code == 200
    log = only_log(gateway, text)
    assert log["model"] == "m" * 300
    assert log["completionId"] == "i" * 200
    assert log["finishReason"] == "f" * 32
    assert (log["inputTokens"], log["outputTokens"]) == (None, 2)
    assert log["durationMs"] is None
    assert log["metadata"] == {"k" * 200: "long key", "short": "ok"}
    assert log["reqPayload"]["model"] == "m" * 400  # the body keeps what was sent


def test_report_long_metadata_value_is_stored_clipped(gateway: Gateway) -> None:
    # Postgres indexes metadata values; an oversized one must not cost the call (or its batch).
    text, big = marker(), uuid.uuid4().hex * 300  # 9,600 characters
    report(gateway, text, metadata={"big": big, "small": "s"})
    log = only_log(gateway, text)
    assert log["metadata"]["big"] == big[:1500]
    assert log["metadata"]["small"] == "s"
    assert log["reqPayload"]["metadata"]["big"] == big


def test_update_log_metadata_value_too_long_is_bad_request(gateway: Gateway) -> None:
    text = marker()
    report(gateway, text)
    with pytest.raises(ApiError) as info:
        op(gateway).update_log_metadata(
            filters=[{"field": "completionId", "equals": f"chatcmpl-{text}"}], metadata={"note": "€" * 501}
        )
    assert info.value.status_code == 400
    assert "1500 bytes" in info.value.body["message"]


def test_report_nul_characters_are_dropped_not_the_call(gateway: Gateway) -> None:
    # Postgres text columns refuse NUL; the call is stored without them on every backend.
    text = marker()
    report(
        gateway,
        text,
        model="gpt-\u00004o",
        status=500,
        error_message="upstream\u0000 broke",
        metadata={"note": "a\u0000b"},
    )
    log = only_log(gateway, text)
    assert log["model"] == "gpt-4o"
    assert log["errorMessage"] == "upstream broke"
    assert log["metadata"] == {"note": "ab", **SDK_TAGS}
    assert log["reqPayload"]["model"] == "gpt-\u00004o"  # bodies are kept exactly


def test_update_log_metadata_nul_character_is_bad_request(gateway: Gateway) -> None:
    with pytest.raises(ApiError) as info:
        op(gateway).update_log_metadata(
            filters=[{"field": "model", "equals": "x"}], metadata={"k": "a\u0000"}
        )
    assert info.value.status_code == 400
    with pytest.raises(ApiError) as info:
        op(gateway).update_log_metadata(
            filters=[{"field": "model", "equals": "x\u0000"}], metadata={"k": "a"}
        )
    assert info.value.status_code == 400


@pytest.mark.parametrize("at", [10**20, 1e30], ids=["int", "float"])
def test_report_time_beyond_64_bits_is_bad_request(gateway: Gateway, at: float) -> None:
    # Refused up front, rather than accepted with "ok" and then lost by the writer.
    with gateway.http() as h:
        r = h.post("/report", json={"requestedAt": at, "reqPayload": {"model": "gpt-4o"}})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "requestedAt"
