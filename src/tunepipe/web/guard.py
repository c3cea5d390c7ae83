"""What every page of the UI shares: who is signed in, the navigation, and the two kinds of
handler.

:func:`page` wraps a page that needs a session: a signed-out visitor is sent to the sign-in form
(and back afterwards), and a service's error becomes an HTML error page with its status, never
the API's JSON envelope. :func:`action` wraps a state-changing request (``POST``), checked before
anything else: a session (else 401), the same origin when the browser says, the session's CSRF
token, and a read/write key (else 403); a refused request changes nothing.

Each request reads the session (:mod:`tunepipe.web.session`) and authenticates its key again,
so a revoked key ends its sessions; a page shows the signed-in key's project only. A new page is
a handler ``(request, signed) -> response`` that calls one service, wrapped by :func:`page`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tunepipe.domain.projects import Admin, Principal
from tunepipe.errors import AuthenticationFailed, TunepipeError
from tunepipe.services.container import Container
from tunepipe.web import session as sessions
from tunepipe.web.render import Pages, redirect

NAV = (
    ("Request Logs", "/logs"),
    ("Datasets", "/datasets"),
    ("Fine-tunes", "/fine-tunes"),
    ("Evaluations", "/evaluations"),
    ("Criteria", "/criteria"),
    ("Usage", "/usage"),
    ("Settings", "/settings"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Held:
    """Another key this browser signed in with, as the project switcher lists it."""

    ref: str  # a fingerprint of the key, never the key
    project: str
    read_only: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Signed:
    principal: Principal
    session: sessions.Session
    others: tuple[Held, ...] = ()
    renewed: bool = False  # the active key stopped working and another held key took over


def key_ref(key: str) -> str:
    """What a form names a held key by: a fingerprint, so the page never carries a key."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def container(request: Request) -> Container:
    state: Container = request.app.state.tp
    return state


def renderer(request: Request) -> Pages:
    pages: Pages = request.app.state.web_pages
    return pages


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


async def signed_in(request: Request) -> Signed | None:
    tp = container(request)
    session = sessions.unseal(tp.box, request.cookies.get(sessions.COOKIE))
    if session is None:
        return None
    renewed = False
    for _ in range(len(session.held)):
        try:
            holder = await tp.auth.holder(f"Bearer {session.api_key}")
            break
        except AuthenticationFailed:
            # The active key was revoked: the newest other key this browser holds takes over
            # (same CSRF token and expiry), else the browser is signed out.
            rest = tuple(k for k in session.held if k != session.api_key)
            if not rest:
                return None
            session = dataclasses.replace(session, api_key=rest[-1], keys=rest)
            renewed = True
    else:
        return None
    if isinstance(holder, Admin):
        return None
    return Signed(holder, session, await _others(tp, session), renewed)


def _renew(request: Request, signed: Signed, response: Response) -> Response:
    return set_session(request, response, signed.session) if signed.renewed else response


async def _others(tp: Container, session: sessions.Session) -> tuple[Held, ...]:
    """The session's other keys that still authenticate (a revoked one drops out of the list)."""
    found: list[Held] = []
    for key in session.held:
        if key == session.api_key:
            continue
        try:
            holder = await tp.auth.holder(f"Bearer {key}")
        except AuthenticationFailed:
            continue
        if isinstance(holder, Principal):
            found.append(Held(key_ref(key), holder.project.name, holder.read_only))
    return tuple(sorted(found, key=lambda h: (h.project, h.read_only)))


def set_session(request: Request, response: Response, session: sessions.Session) -> Response:
    """``response`` with the sealed session cookie (HttpOnly, SameSite=Strict, Secure on HTTPS)."""
    response.set_cookie(
        sessions.COOKIE,
        sessions.seal(container(request).box, session),
        max_age=sessions.MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


def local_path(value: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/logs"
    parts = urlsplit(value)
    return "/logs" if parts.scheme or parts.netloc else value


def same_origin(request: Request) -> bool:
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


def page_context(request: Request, signed: Signed | None, **context: Any) -> dict[str, Any]:
    return {
        "nav": NAV,
        "current": request.url.path,
        "project": signed.principal.project.name if signed else None,
        "read_only": signed.principal.read_only if signed else True,
        "csrf": signed.session.csrf if signed else "",
        "other_projects": signed.others if signed else (),
        **context,
    }


def error_page(request: Request, signed: Signed | None, status: int, message: str) -> Response:
    return renderer(request).render(
        request, "error.html", page_context(request, signed, status=status, message=message), status
    )


Handler = Callable[[Request, Signed], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def page(handler: Handler) -> Endpoint:
    """A page that needs a session: signed-out visitors go to the sign-in form; a service's
    error becomes an HTML error page."""

    async def run(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect(request, "/sign-in?" + urlencode({"next": target}))
        try:
            return _renew(request, signed, await handler(request, signed))
        except TunepipeError as exc:
            return error_page(request, signed, exc.status_code, exc.message)

    return run


def csrf_refusal(request: Request, signed: Signed, form: FormData) -> Response | None:
    """The 403 page for a ``POST`` that did not come from this site's own page (another origin,
    or without the session's CSRF token); ``None`` when it did."""
    given = request.headers.get(sessions.CSRF_HEADER) or form.get(sessions.CSRF_FIELD)
    if same_origin(request) and sessions.csrf_ok(signed.session, str(given or "")):
        return None
    return error_page(request, signed, 403, "This form has expired or did not come from this site.")


def action(
    handler: Callable[[Request, Signed, FormData], Awaitable[Response]],
) -> Endpoint:
    """A state-changing request: same origin, the session's CSRF token, a read/write key."""

    async def run(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return error_page(request, None, 401, "Sign in first.")
        form = await request.form()
        if (forged := csrf_refusal(request, signed, form)) is not None:
            return forged
        if signed.principal.read_only:
            return error_page(request, signed, 403, "This key is read-only: it can look, not change.")
        try:
            return _renew(request, signed, await handler(request, signed, form))
        except TunepipeError as exc:
            return error_page(request, signed, exc.status_code, exc.message)

    return run
