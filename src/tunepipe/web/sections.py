"""The sections of the navigation not built as pages yet: each says what the API and the CLI
offer for it meanwhile (no made-up data, no broken links)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tunepipe.web.guard import Signed, page, page_context, renderer

LATER: dict[str, tuple[str, str]] = {}


async def _later(request: Request, signed: Signed) -> Response:
    heading, offer = LATER[request.url.path]
    return renderer(request).render(
        request, "later.html", page_context(request, signed, heading=heading, offer=offer)
    )


later_page = page(_later)
