"""The sections of the navigation not built as pages yet: each says what the API and the CLI
offer for it meanwhile (no made-up data, no broken links)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tunepipe.web.guard import Signed, page, page_context, renderer

LATER = {
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


async def _later(request: Request, signed: Signed) -> Response:
    heading, offer = LATER[request.url.path]
    return renderer(request).render(
        request, "later.html", page_context(request, signed, heading=heading, offer=offer)
    )


later_page = page(_later)
