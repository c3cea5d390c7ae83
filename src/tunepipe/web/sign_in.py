"""Signing in with an API key, and out.

Signing in checks the key like the API does (an admin key is refused: it belongs to no project)
and sets the sealed session cookie (:mod:`tunepipe.web.session`); a wrong key shows the form
again with the reason (401). Signing out is a state-changing request like any other: it needs
the CSRF token, else a page elsewhere could sign a user out.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tunepipe.domain.projects import Admin, Principal
from tunepipe.errors import AuthenticationFailed
from tunepipe.web import session as sessions
from tunepipe.web.guard import (
    container,
    error_page,
    is_https,
    local_path,
    page_context,
    renderer,
    same_origin,
    set_session,
    signed_in,
)
from tunepipe.web.render import redirect


async def home(request: Request) -> Response:
    signed = await signed_in(request)
    return redirect(request, "/logs" if signed else "/sign-in")


async def sign_in_form(request: Request) -> Response:
    signed = await signed_in(request)
    adding = signed is not None and request.query_params.get("add") == "1"
    if signed is not None and not adding:
        return redirect(request, local_path(request.query_params.get("next")))
    context = page_context(
        request, signed, error=None, next=local_path(request.query_params.get("next")), adding=adding
    )
    return renderer(request).render(request, "sign_in.html", context)


async def sign_in(request: Request) -> Response:
    form = await request.form()
    next_path = local_path(str(form.get("next") or ""))
    if not same_origin(request):
        return error_page(request, None, 403, "This form did not come from this site.")
    # "Add project": a signed-in browser keeps its keys and adds this one (with its CSRF token).
    held: tuple[str, ...] = ()
    signed = await signed_in(request) if form.get("add") == "1" else None
    if signed is not None:
        if not sessions.csrf_ok(signed.session, str(form.get(sessions.CSRF_FIELD) or "")):
            return error_page(request, signed, 403, "This form has expired or did not come from this site.")
        held = signed.session.held
    key = str(form.get("api_key") or "").strip()
    error = None
    holder: Principal | Admin | None = None
    if not key or len(key) > 200:
        error = "Enter an API key."
    else:
        try:
            holder = await container(request).auth.holder(f"Bearer {key}")
        except AuthenticationFailed:
            error = "That API key is not valid."
        if isinstance(holder, Admin):
            error = "Admin keys manage the installation; sign in with a project's API key."
    if error is not None:
        context = page_context(request, signed, error=error, next=next_path, adding=signed is not None)
        return renderer(request).render(request, "sign_in.html", context, status_code=401)
    response = redirect(request, next_path)
    return set_session(request, response, sessions.issue(key, held))


async def sign_out(request: Request) -> Response:
    """Forget the session; like every state-changing request it needs the CSRF token (else a
    page elsewhere could sign a user out)."""
    signed = await signed_in(request)
    if signed is not None:
        form = await request.form()
        given = request.headers.get(sessions.CSRF_HEADER) or form.get(sessions.CSRF_FIELD)
        if not same_origin(request) or not sessions.csrf_ok(signed.session, str(given or "")):
            return error_page(request, signed, 403, "This form has expired or did not come from this site.")
    response = redirect(request, "/sign-in")
    response.delete_cookie(
        sessions.COOKIE, path="/", httponly=True, samesite="strict", secure=is_https(request)
    )
    return response
