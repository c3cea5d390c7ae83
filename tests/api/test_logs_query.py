"""tunepipe's own log API: ``GET /logs`` (filters, cursor pages, bodies), ``GET /logs/{id}`` and
``GET /logs/export`` (OpenPipe's JSONL export shape), each scoped to the caller's project."""

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from openpipe.client import OpenPipe

from conftest import KEY_RE, Gateway


def marker() -> str:
    return f"m{uuid.uuid4().hex}"


def window() -> int:
    """A time window (1990s) no other test writes into."""
    return 631_152_000_000 + (uuid.uuid4().int % 10**8) * 1000


def report(
    gateway: Gateway,
    text: str,
    *,
    model: str,
    at: int,
    key: str | None = None,
    status: int = 200,
    answer: str | None = None,
    **extra: Any,
) -> None:
    body = {
        "requestedAt": at,
        "receivedAt": at + 40,
        "reqPayload": {"model": model, "messages": [{"role": "user", "content": text}], **extra},
        "respPayload": {
            "id": f"chatcmpl-{text}",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer or f"re {text}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        },
        "statusCode": status,
    }
    with gateway.http(key) as h:
        r = h.post("/report", json=body)
    assert r.status_code == 200, r.text


def get_logs(gateway: Gateway, key: str | None = None, **params: Any) -> dict[str, Any]:
    with gateway.http(key) as h:
        r = h.get("/logs", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def texts(gateway: Gateway, key: str | None = None, **params: Any) -> list[str]:
    data = get_logs(gateway, key, bodies="true", limit=500, **params)["data"]
    return [d["reqPayload"]["messages"][0]["content"] for d in data]


def export(gateway: Gateway, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    with gateway.http(key) as h:
        r = h.get("/logs/export", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [orjson.loads(line) for line in r.content.splitlines() if line]


@pytest.fixture(scope="module")
def other_key(gateway: Gateway) -> Iterator[str]:
    """The read/write key of a second project on the same server."""
    out = gateway.cli("projects", "create", f"other-{uuid.uuid4().hex[:8]}").stdout
    keys = KEY_RE.findall(out)
    assert len(keys) == 2, out
    yield keys[0]


def test_logs_since_until_accept_milliseconds(gateway: Gateway) -> None:
    base, model = window(), f"t-{marker()}"
    names = [marker() for _ in range(4)]
    for i, name in enumerate(names):
        report(gateway, name, model=model, at=base + i * 60_000)
    assert texts(gateway, since=base + 60_000, until=base + 180_000) == [names[2], names[1]]
    assert texts(gateway, since=base + 60_001, until=base + 600_000) == [names[3], names[2]]
    assert texts(gateway, model=model, since=base + 120_000) == [names[3], names[2]]
    assert texts(gateway, since=base, until=base + 1) == [names[0]]
    assert texts(gateway, until=base + 240_000, model=model) == names[::-1]


def test_logs_since_until_accept_iso_times(gateway: Gateway) -> None:
    base, model = window(), f"iso-{marker()}"
    names = [marker() for _ in range(3)]
    for i, name in enumerate(names):
        report(gateway, name, model=model, at=base + i * 3_600_000)
    start = datetime.fromtimestamp((base + 3_600_000) / 1000, UTC)
    cet = timezone(timedelta(hours=2))
    forms = [
        start.isoformat(),  # +00:00
        start.isoformat().replace("+00:00", "Z"),
        start.replace(tzinfo=None).isoformat(),  # naive reads as UTC
        start.astimezone(cet).isoformat(),
    ]
    for since in forms:
        assert texts(gateway, since=since, model=model) == [names[2], names[1]], since
    until = (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert texts(gateway, since=forms[1], until=until) == [names[1]]


def test_logs_filter_by_model_status_metadata_and_completion_id(gateway: Gateway) -> None:
    base, model = window(), f"f-{marker()}"
    a, b, c, d = (marker() for _ in range(4))
    report(gateway, a, model=model, at=base, metadata={"prompt_id": "x", "env": "prod"})
    report(gateway, b, model=model, at=base + 1, status=429, metadata={"prompt_id": "x", "env": "dev"})
    report(gateway, c, model=model, at=base + 2, metadata={"prompt_id": "y", "env": "prod"})
    report(gateway, d, model=f"{model}-2", at=base + 3, metadata={"prompt_id": "x", "env": "prod"})
    assert texts(gateway, model=model) == [c, b, a]
    assert texts(gateway, model=model, status=429) == [b]
    assert texts(gateway, model=model, status=200) == [c, a]
    assert texts(gateway, **{"metadata.prompt_id": "x", "metadata.env": "prod", "since": base}) == [d, a]
    assert texts(gateway, model=model, **{"metadata.prompt_id": "y"}) == [c]
    assert texts(gateway, completion_id=f"chatcmpl-{b}") == [b]
    assert texts(gateway, model=model, **{"metadata.env": "staging"}) == []


def test_logs_contains_searches_request_and_response_case_insensitively(gateway: Gateway) -> None:
    base, model = window(), f"c-{marker()}"
    q, other = marker(), marker()
    report(gateway, f"about {q.upper()} here", model=model, at=base)
    report(gateway, other, model=model, at=base + 1, answer=f"the answer mentions {q}")
    report(gateway, marker(), model=model, at=base + 2)
    assert texts(gateway, contains=q) == [other, f"about {q.upper()} here"]
    assert texts(gateway, contains=q, model=model, since=base + 1) == [other]


def test_logs_pages_walk_all_calls_newest_first(gateway: Gateway) -> None:
    base, model = window(), f"p-{marker()}"
    offsets = [0, 0, 0, 5, 7, 7, 9, 12, 12, 12, 15]  # ties must not lose or repeat a call
    for i, off in enumerate(offsets):
        report(gateway, f"page-{i}-{marker()}", model=model, at=base + off)
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"model": model, "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = get_logs(gateway, **params)
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            assert cursor is None
            break
    ids = [c["id"] for c in seen]
    assert len(ids) == len(offsets) == len(set(ids))
    assert [c["requestedAt"] - base for c in seen] == sorted(offsets, reverse=True)
    assert ids == [c["id"] for c in get_logs(gateway, model=model, limit=500)["data"]]


def test_logs_page_cursor_survives_new_calls(gateway: Gateway) -> None:
    base, model = window(), f"n-{marker()}"
    for i in range(4):
        report(gateway, marker(), model=model, at=base + i)
    first = get_logs(gateway, model=model, limit=2)
    report(gateway, marker(), model=model, at=base + 100)  # a newer call arrives meanwhile
    second = get_logs(gateway, model=model, limit=2, cursor=first["next_cursor"])
    assert [c["requestedAt"] - base for c in first["data"] + second["data"]] == [3, 2, 1, 0]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "MTIz",  # "123": no call id
        "bm90LWEtbnVtYmVyOmlk",  # "not-a-number:id"
        base64.urlsafe_b64encode(b"1:\x00").decode(),
        base64.urlsafe_b64encode(b"99999999999999999999999:id").decode(),
    ],
)
def test_logs_invalid_cursor_is_bad_request(gateway: Gateway, cursor: str) -> None:
    with gateway.http() as h:
        r = h.get("/logs", params={"cursor": cursor})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "cursor"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"status": "ok"},
        {"status": "99999999999"},
        {"since": "last tuesday"},
        {"until": "2024-13-45"},
        {"since": "99999999999999999999999"},
        # Postgres refuses NUL in text; it must be a 400 on every backend, not a 500 on one.
        {"model": "gpt\x00"},
        {"metadata.k": "\x00"},
        {"completion_id": "a\x00"},
    ],
)
def test_logs_invalid_query_is_bad_request(gateway: Gateway, params: dict[str, Any]) -> None:
    with gateway.http() as h:
        r = h.get("/logs", params=params)
    assert r.status_code == 400
    assert r.json()["code"] == "BAD_REQUEST"


def test_logs_bodies_only_when_asked(gateway: Gateway) -> None:
    base, model = window(), f"b-{marker()}"
    text = marker()
    report(gateway, text, model=model, at=base)
    plain = get_logs(gateway, model=model)
    assert plain["object"] == "list"
    (row,) = plain["data"]
    assert "reqPayload" not in row and "respPayload" not in row and "attempts" not in row
    assert row["inputTokens"] == 5 and row["outputTokens"] == 7
    (full,) = get_logs(gateway, model=model, bodies="true")["data"]
    assert full["reqPayload"]["messages"][0]["content"] == text
    assert full["respPayload"]["choices"][0]["message"]["content"] == f"re {text}"
    assert full["attempts"] is None  # one try: nothing more to say
    assert {k: v for k, v in full.items() if k not in ("reqPayload", "respPayload", "attempts")} == row


def test_logs_get_one_returns_full_view(gateway: Gateway) -> None:
    base, model = window(), f"g-{marker()}"
    text = marker()
    report(gateway, text, model=model, at=base, metadata={"k": "v"})
    (row,) = get_logs(gateway, model=model)["data"]
    with gateway.http() as h:
        r = h.get(f"/logs/{row['id']}")
    assert r.status_code == 200
    one = r.json()
    assert one["id"] == row["id"]
    assert one["reqPayload"]["messages"][0]["content"] == text
    assert one["metadata"] == {"k": "v"}
    assert one["durationMs"] == 40
    with gateway.http(gateway.read_only_key) as h:  # reading needs no write access
        assert h.get(f"/logs/{row['id']}").status_code == 200


@pytest.mark.parametrize("call_id", [str(uuid.uuid4()), "a%00b"], ids=["unknown", "nul"])
def test_logs_get_unknown_id_is_not_found(gateway: Gateway, call_id: str) -> None:
    with gateway.http() as h:
        r = h.get(f"/logs/{call_id}")
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND"


def test_logs_export_is_openpipe_jsonl(gateway: Gateway) -> None:
    base, model = window(), f"e-{marker()}"
    text = marker()
    report(gateway, text, model=model, at=base, metadata={"prompt_id": "exp"})
    (line,) = export(gateway, model=model)
    assert set(line) == {"input", "output", "cacheHit", "durationMs", "tags"}
    assert line["input"] == {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "metadata": {"prompt_id": "exp"},
    }
    assert line["output"] == {"role": "assistant", "content": f"re {text}"}
    assert line["cacheHit"] is False
    assert line["durationMs"] == 40
    assert line["tags"] == {"prompt_id": "exp"}


def test_logs_export_removes_duplicates_and_errors_by_default(gateway: Gateway) -> None:
    base, model = window(), f"d-{marker()}"
    same, other, failed = marker(), marker(), marker()
    report(gateway, same, model=model, at=base)
    report(gateway, same, model=model, at=base + 1)  # identical input and output
    report(gateway, other, model=model, at=base + 2)
    report(gateway, failed, model=model, at=base + 3, status=500)

    def inputs(**params: Any) -> list[str]:
        return [line["input"]["messages"][0]["content"] for line in export(gateway, model=model, **params)]

    assert inputs() == [other, same]
    assert inputs(remove_duplicates="false") == [other, same, same]
    assert inputs(exclude_errors="false") == [failed, other, same]
    assert inputs(remove_duplicates="false", exclude_errors="false") == [failed, other, same, same]


def test_logs_export_applies_filters(gateway: Gateway) -> None:
    base, model = window(), f"ef-{marker()}"
    keep, drop = marker(), marker()
    report(gateway, keep, model=model, at=base, metadata={"split": "train"})
    report(gateway, drop, model=model, at=base + 1, metadata={"split": "test"})
    lines = export(gateway, model=model, **{"metadata.split": "train"})
    assert [line["input"]["messages"][0]["content"] for line in lines] == [keep]
    assert export(gateway, model=model, since=base + 2) == []


def test_logs_are_isolated_between_projects(gateway: Gateway, other_key: str) -> None:
    base, model = window(), f"iso-{marker()}"
    mine, theirs = marker(), marker()
    report(gateway, mine, model=model, at=base)
    report(gateway, theirs, model=model, at=base + 1, key=other_key)
    assert texts(gateway, model=model) == [mine]
    assert texts(gateway, other_key, model=model) == [theirs]
    assert texts(gateway, other_key, contains=mine) == []
    assert [line["input"]["messages"][0]["content"] for line in export(gateway, other_key, model=model)] == [
        theirs
    ]
    (my_row,) = get_logs(gateway, model=model)["data"]
    (their_row,) = get_logs(gateway, other_key, model=model)["data"]
    with gateway.http(other_key) as h:
        assert h.get(f"/logs/{my_row['id']}").status_code == 404
        assert h.get(f"/logs/{their_row['id']}").status_code == 200
    with gateway.http() as h:
        assert h.get(f"/logs/{their_row['id']}").status_code == 404
    latest = gateway.latest(other_key)
    assert latest["reqPayload"]["messages"][0]["content"] == theirs


def test_logs_update_metadata_never_reaches_another_project(gateway: Gateway, other_key: str) -> None:
    base, model = window(), f"um-{marker()}"
    report(gateway, marker(), model=model, at=base, metadata={"owner": "me"})
    result = OpenPipe(api_key=other_key, base_url=gateway.base_url).update_log_metadata(
        filters=[{"field": "model", "equals": model}], metadata={"owner": "them"}
    )
    assert result.matched_logs == 0
    (row,) = get_logs(gateway, model=model)["data"]
    assert row["metadata"] == {"owner": "me"}


def test_logs_new_project_has_no_latest_call(gateway: Gateway) -> None:
    out = gateway.cli("projects", "create", f"empty-{uuid.uuid4().hex[:8]}").stdout
    key = KEY_RE.findall(out)[0]
    assert gateway.latest(key) is None
    assert get_logs(gateway, key)["data"] == []
    assert export(gateway, key) == []
