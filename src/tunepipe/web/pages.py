"""The UI's pages: sign-in, the navigation's sections, Request Logs (list and detail).

Each handler reads the session (:mod:`tunepipe.web.session`), authenticates its key again
(revoked keys end their sessions), calls one service like an API route does, and renders. A
page only ever shows the signed-in key's project. Errors render as HTML pages with the error's
status, never as the API's JSON envelope.

Every state-changing request (``POST``) is checked before anything else: same origin (when the
browser says), a session, its CSRF token, then a read/write key; any failure is a 403 (a missing
session, 401) and changes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tunepipe.domain.logs import LogFilter, LoggedCall
from tunepipe.domain.projects import Admin, Principal
from tunepipe.errors import AuthenticationFailed, InvalidRequest, NotFound, TunepipeError
from tunepipe.protocol.logs import query_filter
from tunepipe.services.container import Container
from tunepipe.web import session as sessions
from tunepipe.web import views
from tunepipe.web.render import Pages, redirect

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_TEXT = 500  # the longest filter value a page accepts

NAV = (
    ("Request Logs", "/logs"),
    ("Datasets", "/datasets"),
    ("Fine-tunes", "/fine-tunes"),
    ("Evaluations", "/evaluations"),
    ("Criteria", "/criteria"),
    ("Usage", "/usage"),
    ("Settings", "/settings"),
)

# The sections not built yet: what the API and CLI offer for each meanwhile.
LATER = {
    "/datasets": (
        "Datasets",
        "Datasets are managed through the API (GET/POST /api/v1/datasets, entries, import-logs) "
        "and the CLI (`tunepipe datasets --help`).",
    ),
    "/fine-tunes": (
        "Fine-tunes",
        "Fine-tunes are started and followed through the API (POST/GET /api/v1/models) and the "
        "CLI (`tunepipe models --help`, `tunepipe jobs --help`).",
    ),
    "/evaluations": (
        "Evaluations",
        "Evaluations are created and read through the API (/api/v1/evals) and the CLI "
        "(`tunepipe evals --help`).",
    ),
    "/criteria": (
        "Criteria",
        "Criteria, their versions and alignment sets live in the API (/api/v1/criteria) and the "
        "CLI (`tunepipe criteria --help`).",
    ),
    "/usage": (
        "Usage",
        "Usage is reported by the API: every logged call carries its tokens and cost "
        "(GET /api/v1/logs, GET /api/v1/logs/export), and GET /metrics has the counters.",
    ),
    "/settings": (
        "Settings",
        "Project settings, keys, provider keys and routing are managed through the API "
        "(/api/v1/keys, /api/v1/providers, /api/v1/routing) and the CLI (`tunepipe projects "
        "--help`, `tunepipe providers --help`).",
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Signed:
    principal: Principal
    session: sessions.Session


def _container(request: Request) -> Container:
    state: Container = request.app.state.tp
    return state


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.web_pages
    return pages


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def _signed(request: Request) -> Signed | None:
    tp = _container(request)
    session = sessions.unseal(tp.box, request.cookies.get(sessions.COOKIE))
    if session is None:
        return None
    try:
        holder = await tp.auth.holder(f"Bearer {session.api_key}")
    except AuthenticationFailed:
        return None
    if isinstance(holder, Admin):
        return None
    return Signed(holder, session)


def _local_path(value: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/logs"
    parts = urlsplit(value)
    return "/logs" if parts.scheme or parts.netloc else value


def _same_origin(request: Request) -> bool:
    """What the browser says about where a form came from (absent headers say nothing)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    # Host and port only: behind a proxy that ends TLS the server sees http while the browser
    # says https.
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _base(request: Request, signed: Signed | None, **context: Any) -> dict[str, Any]:
    return {
        "nav": NAV,
        "current": request.url.path,
        "project": signed.principal.project.name if signed else None,
        "read_only": signed.principal.read_only if signed else True,
        "csrf": signed.session.csrf if signed else "",
        **context,
    }


def error_page(request: Request, signed: Signed | None, status: int, message: str) -> Response:
    return _pages(request).render(
        request, "error.html", _base(request, signed, status=status, message=message), status
    )


Handler = Callable[[Request, Signed], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page that needs a session: signed-out visitors go to the sign-in form; a service's
    error becomes an HTML error page."""

    async def run(request: Request) -> Response:
        signed = await _signed(request)
        if signed is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect(request, "/sign-in?" + urlencode({"next": target}))
        try:
            return await handler(request, signed)
        except TunepipeError as exc:
            return error_page(request, signed, exc.status_code, exc.message)

    return run


def action(
    handler: Callable[[Request, Signed, FormData], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A state-changing request: same origin, the session's CSRF token, a read/write key."""

    async def run(request: Request) -> Response:
        signed = await _signed(request)
        if signed is None:
            return error_page(request, None, 401, "Sign in first.")
        form = await request.form()
        given = request.headers.get(sessions.CSRF_HEADER) or form.get(sessions.CSRF_FIELD)
        if not _same_origin(request) or not sessions.csrf_ok(signed.session, str(given or "")):
            return error_page(request, signed, 403, "This form has expired or did not come from this site.")
        if signed.principal.read_only:
            return error_page(request, signed, 403, "This key is read-only: it can look, not change.")
        try:
            return await handler(request, signed, form)
        except TunepipeError as exc:
            return error_page(request, signed, exc.status_code, exc.message)

    return run


# Sign-in and sign-out ------------------------------------------------------------------------


async def home(request: Request) -> Response:
    signed = await _signed(request)
    return redirect(request, "/logs" if signed else "/sign-in")


async def sign_in_form(request: Request) -> Response:
    if await _signed(request) is not None:
        return redirect(request, _local_path(request.query_params.get("next")))
    context = _base(request, None, error=None, next=_local_path(request.query_params.get("next")))
    return _pages(request).render(request, "sign_in.html", context)


async def sign_in(request: Request) -> Response:
    form = await request.form()
    next_path = _local_path(str(form.get("next") or ""))
    if not _same_origin(request):
        return error_page(request, None, 403, "This form did not come from this site.")
    key = str(form.get("api_key") or "").strip()
    error = None
    holder: Principal | Admin | None = None
    if not key or len(key) > 200:
        error = "Enter an API key."
    else:
        try:
            holder = await _container(request).auth.holder(f"Bearer {key}")
        except AuthenticationFailed:
            error = "That API key is not valid."
        if isinstance(holder, Admin):
            error = "Admin keys manage the installation; sign in with a project's API key."
    if error is not None:
        context = _base(request, None, error=error, next=next_path)
        return _pages(request).render(request, "sign_in.html", context, status_code=401)
    response = redirect(request, next_path)
    session = sessions.issue(key)
    response.set_cookie(
        sessions.COOKIE,
        sessions.seal(_container(request).box, session),
        max_age=sessions.MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


async def sign_out(request: Request) -> Response:
    """Forget the session; like every state-changing request it needs the CSRF token (else a
    page elsewhere could sign a user out)."""
    signed = await _signed(request)
    if signed is not None:
        form = await request.form()
        given = request.headers.get(sessions.CSRF_HEADER) or form.get(sessions.CSRF_FIELD)
        if not _same_origin(request) or not sessions.csrf_ok(signed.session, str(given or "")):
            return error_page(request, signed, 403, "This form has expired or did not come from this site.")
    response = redirect(request, "/sign-in")
    response.delete_cookie(
        sessions.COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


# Request Logs ----------------------------------------------------------------------------------

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
    logs = _container(request).logs
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
    tp = _container(request)
    datasets = [] if signed.principal.read_only else await tp.datasets.all(signed.principal)
    context = _base(
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
    return _pages(request).render(request, "logs.html", context, status_code=400 if error else 200)


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
    tp = _container(request)
    dataset_id = str(form.get("dataset_id") or "")
    if not dataset_id:
        name = str(form.get("new_name") or "").strip()
        if not name or len(name) > MAX_TEXT or "\x00" in name:
            raise InvalidRequest("Choose a dataset, or name a new one", param="new_name")
        dataset_id = (await tp.datasets.create(signed.principal, name)).id
    added, skipped = await tp.imports.add_calls(signed.principal, dataset_id, call_ids)
    back = urlsplit(_local_path(str(form.get("next") or "")))
    kept = [(k, v) for k, v in parse_qsl(back.query) if k not in ("added", "skipped")]
    query = urlencode([*kept, ("added", str(added)), ("skipped", str(skipped))])
    return redirect(request, f"{back.path}?{query}")


async def _log_detail(request: Request, signed: Signed) -> Response:
    call_id = request.path_params["call_id"]
    if "\x00" in call_id:
        raise NotFound("No such logged call")
    call = await _container(request).logs.get(signed.principal, call_id)
    context = _base(
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
    return _pages(request).render(request, "log_detail.html", context)


async def _set_metadata(request: Request, signed: Signed, form: FormData) -> Response:
    call_id = request.path_params["call_id"]
    key = str(form.get("key") or "").strip()
    value = str(form.get("value") or "")
    if not key:
        raise InvalidRequest("A metadata key is needed", param="key")
    if "\x00" in key or "\x00" in value or "\x00" in call_id:
        raise InvalidRequest("Metadata cannot contain NUL characters", param="key")
    changes: dict[str, str | None] = {key: None if form.get("delete") else value}
    await _container(request).logs.set_call_metadata(signed.principal, call_id, changes)
    return redirect(request, f"/logs/{call_id}?saved=1")


async def _later(request: Request, signed: Signed) -> Response:
    heading, offer = LATER[request.url.path]
    return _pages(request).render(request, "later.html", _base(request, signed, heading=heading, offer=offer))


logs_page = page(_logs)
log_detail_page = page(_log_detail)
later_page = page(_later)
set_metadata = action(_set_metadata)
add_to_dataset = action(_add_to_dataset)
