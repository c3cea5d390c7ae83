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
    signed_in,
)
from tunepipe.web.render import redirect


async def home(request: Request) -> Response:
    signed = await signed_in(request)
    return redirect(request, "/logs" if signed else "/sign-in")


async def sign_in_form(request: Request) -> Response:
    if await signed_in(request) is not None:
        return redirect(request, local_path(request.query_params.get("next")))
    context = page_context(request, None, error=None, next=local_path(request.query_params.get("next")))
    return renderer(request).render(request, "sign_in.html", context)


async def sign_in(request: Request) -> Response:
    form = await request.form()
    next_path = local_path(str(form.get("next") or ""))
    if not same_origin(request):
        return error_page(request, None, 403, "This form did not come from this site.")
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
        context = page_context(request, None, error=error, next=next_path)
        return renderer(request).render(request, "sign_in.html", context, status_code=401)
    response = redirect(request, next_path)
    session = sessions.issue(key)
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
