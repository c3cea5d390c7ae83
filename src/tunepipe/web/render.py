"""Rendering the UI's pages: one Jinja2 environment (autoescape always on) and the headers every
page carries.

The Content-Security-Policy allows scripts, styles and everything else from this origin only:
no inline script or style and no ``eval``, so even text that escaped escaping could not run.
htmx is configured by a ``<meta name="htmx-config">`` tag for the same reason (no inline
``<style>`` of its own, no ``eval``, no scripts in swapped content).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tunepipe.web import views

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name: log content is untrusted text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = views.when
    env.filters["pretty"] = views.pretty
    env.filters["cost"] = views.cost
    return env


class Pages:
    """Renders a template into a response with the UI's security headers."""

    def __init__(self) -> None:
        self._env = environment()

    def render(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        html = self._env.get_template(name).render(request=request, **context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(request: Request, url: str) -> Response:
    """A 303 to ``url``; an htmx request is told to navigate the whole page there instead of
    swapping the target page into a fragment."""
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={**SECURITY_HEADERS, "hx-redirect": url})
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
