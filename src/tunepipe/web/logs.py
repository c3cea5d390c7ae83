"""Request Logs: the project's calls (filters, keyset pages both ways), one call in full, and
the two things a read/write key may change there: a call's metadata, and which calls go into a
dataset.

Filters are the API's (``GET /api/v1/logs``: :func:`~tunepipe.protocol.logs.query_filter`);
judges' calls are left out, their verdicts show on the call they judged.
"""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tunepipe.domain.logs import LogFilter, LoggedCall
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.logs import query_filter
from tunepipe.web import views
from tunepipe.web.guard import Signed, action, container, local_path, page, page_context, renderer
from tunepipe.web.render import redirect

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_TEXT = 500  # the longest filter value a page accepts

RANGES = {"15m": 15 * 60_000, "24h": 24 * 3600_000, "7d": 7 * 24 * 3600_000}
FILTER_FIELDS = ("model", "status", "range", "since", "until", "meta_key", "meta_value", "contains")


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    out = {name: q.get(name, "").strip() for name in FILTER_FIELDS}
    if any(len(v) > MAX_TEXT for v in out.values()):
        raise InvalidRequest(f"Filter values are at most {MAX_TEXT} characters")
    return out


def _log_filter(given: dict[str, str]) -> LogFilter:
    items = [(k, given[k]) for k in ("model", "status", "since", "until", "contains") if given[k]]
    if given["range"] in RANGES:
        items.append(("since", str(int(time.time() * 1000) - RANGES[given["range"]])))
    elif given["range"]:
        raise InvalidRequest("Unknown time range", param="range")
    if given["meta_key"]:
        items.append((f"metadata.{given['meta_key']}", given["meta_value"]))
    return dataclasses.replace(query_filter(items), judges=False)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "")
    if not raw:
        return PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InvalidRequest(f"`limit` must be between 1 and {MAX_PAGE_SIZE}", param="limit")
    return int(raw)


def _query(given: dict[str, str], limit: int, **page: str | None) -> str:
    params = {**given, "limit": str(limit) if limit != PAGE_SIZE else "", **page}
    return urlencode({k: v for k, v in params.items() if v})


RANGE_CHOICES = (
    ("", "Any time"),
    ("15m", "Last 15 minutes"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
)


async def _logs(request: Request, signed: Signed) -> Response:
    """The page of calls; a filter that cannot be used shows the form again with the reason
    (400), with whatever was typed kept."""
    q = request.query_params
    given = {name: q.get(name, "").strip()[:MAX_TEXT] for name in FILTER_FIELDS}
    logs = container(request).logs
    calls: list[LoggedCall] = []
    older = newest = error = None
    newer = False
    limit = PAGE_SIZE
    try:
        given = _filters(request)
        f = _log_filter(given)
        limit = _limit(request)
        cursor, before = q.get("cursor"), q.get("before")
        if before:
            calls, newer = await logs.page_newer(signed.principal, f, before, limit)
            older = logs.cursor_of(calls[-1]) if calls else None
        else:
            calls, older = await logs.page(signed.principal, f, cursor or None, limit, False)
            newer = bool(cursor)
    except InvalidRequest as exc:
        error = exc.message
    newest = logs.cursor_of(calls[0]) if calls else None
    tp = container(request)
    datasets = [] if signed.principal.read_only else await tp.datasets.all(signed.principal)
    context = page_context(
        request,
        signed,
        calls=calls,
        tags=views.tags,
        given=given,
        error=error,
        filtered=any(given.values()),
        limit=limit if limit != PAGE_SIZE else None,
        datasets=datasets,
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        added=_added_notice(request),
        ranges=RANGE_CHOICES,
        older_url=f"/logs?{_query(given, limit, cursor=older)}" if older else None,
        newer_url=f"/logs?{_query(given, limit, before=newest)}" if newer and newest else None,
    )
    return renderer(request).render(request, "logs.html", context, status_code=400 if error else 200)


def _added_notice(request: Request) -> str | None:
    q = request.query_params
    added, skipped = q.get("added", ""), q.get("skipped", "")
    if not added.isdigit():
        return None
    notice = f"Added {int(added)} call{'s' if int(added) != 1 else ''} to the dataset"
    if skipped.isdigit() and int(skipped):
        notice += f" ({int(skipped)} skipped: failed calls and calls that are not chat requests)"
    return notice + "."


async def _add_to_dataset(request: Request, signed: Signed, form: FormData) -> Response:
    call_ids = [str(v) for v in form.getlist("call_id") if str(v)]
    if not call_ids:
        raise InvalidRequest("Select at least one call to add", param="call_id")
    if any("\x00" in i for i in call_ids):
        raise InvalidRequest("Call ids cannot contain NUL characters", param="call_id")
    tp = container(request)
    dataset_id = str(form.get("dataset_id") or "")
    if not dataset_id:
        name = str(form.get("new_name") or "").strip()
        if not name or len(name) > MAX_TEXT or "\x00" in name:
            raise InvalidRequest("Choose a dataset, or name a new one", param="new_name")
        dataset_id = (await tp.datasets.create(signed.principal, name)).id
    added, skipped = await tp.imports.add_calls(signed.principal, dataset_id, call_ids)
    back = urlsplit(local_path(str(form.get("next") or "")))
    kept = [(k, v) for k, v in parse_qsl(back.query) if k not in ("added", "skipped")]
    query = urlencode([*kept, ("added", str(added)), ("skipped", str(skipped))])
    return redirect(request, f"{back.path}?{query}")


async def _log_detail(request: Request, signed: Signed) -> Response:
    call_id = request.path_params["call_id"]
    if "\x00" in call_id:
        raise NotFound("No such logged call")
    call = await container(request).logs.get(signed.principal, call_id)
    context = page_context(
        request,
        signed,
        call=call,
        messages=views.request_messages(call),
        choices=views.response_choices(call),
        tools=call.request.get("tools") if isinstance(call.request, dict) else None,
        criteria=views.criteria_rows(call),
        attempts=views.attempts(call),
        tags=views.tags(call),
        saved=request.query_params.get("saved") == "1",
    )
    return renderer(request).render(request, "log_detail.html", context)


async def _set_metadata(request: Request, signed: Signed, form: FormData) -> Response:
    call_id = request.path_params["call_id"]
    key = str(form.get("key") or "").strip()
    value = str(form.get("value") or "")
    if not key:
        raise InvalidRequest("A metadata key is needed", param="key")
    if "\x00" in key or "\x00" in value or "\x00" in call_id:
        raise InvalidRequest("Metadata cannot contain NUL characters", param="key")
    changes: dict[str, str | None] = {key: None if form.get("delete") else value}
    await container(request).logs.set_call_metadata(signed.principal, call_id, changes)
    return redirect(request, f"/logs/{call_id}?saved=1")


logs_page = page(_logs)
log_detail_page = page(_log_detail)
set_metadata = action(_set_metadata)
add_to_dataset = action(_add_to_dataset)
