"""Usage: the project's requests, tokens and cost over time by model, its cache hit rate and its
errors (by status), and the same numbers per model.

The numbers are aggregated in SQL (:meth:`~tunepipe.services.logs.service.LogService.usage`:
GROUP BY time bucket and model over the logged calls), never by reading calls one by one: hourly
buckets over the last 24 hours, daily buckets over the last 7 or 30 days (UTC). Judges' calls
are left out, as on Request Logs. The chart is drawn by uPlot (``static/usage.js``) from a JSON
data block, which the Content-Security-Policy allows because it is never executed.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tunepipe.db.log_queries import StatusCount, UsageRow
from tunepipe.errors import InvalidRequest
from tunepipe.web.guard import Signed, container, page, page_context, renderer

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# value -> (label, bucket width, buckets)
WINDOWS = {
    "24h": ("Last 24 hours (hourly)", HOUR_MS, 24),
    "7d": ("Last 7 days (daily)", DAY_MS, 7),
    "30d": ("Last 30 days (daily)", DAY_MS, 30),
}
DEFAULT_WINDOW = "24h"
NO_MODEL = "(no model)"


@dataclasses.dataclass(slots=True)
class Totals:
    """Requests, tokens, cost, cache hits and errors summed over buckets (of one model, or all)."""

    model: str = ""
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cache_hits: int = 0
    errors: int = 0

    def add(self, row: UsageRow) -> None:
        self.requests += row.requests
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cost += row.cost
        self.cache_hits += row.cache_hits
        self.errors += row.errors

    @property
    def cache_rate(self) -> str:
        return percent(self.cache_hits, self.requests)

    @property
    def error_rate(self) -> str:
        return percent(self.errors, self.requests)


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def window(choice: str, now_ms: int) -> tuple[int, int, int, int]:
    """``(since, until, bucket width, buckets)``: whole UTC hours or days, ending with the
    current one."""
    _, width, count = WINDOWS[choice]
    until = (now_ms // width + 1) * width
    return until - count * width, until, width, count


def chart_data(rows: list[UsageRow], models: list[str], since: int, width: int, count: int) -> dict[str, Any]:
    """What the chart draws: the buckets' start times (seconds) and, per model, a series of
    requests, tokens and cost (zero in an empty bucket)."""
    index = {m: i for i, m in enumerate(models)}
    series: dict[str, list[list[float]]] = {
        name: [[0] * count for _ in models] for name in ("requests", "tokens", "cost")
    }
    for r in rows:
        if not 0 <= r.bucket < count:
            continue
        m = index[r.model or NO_MODEL]
        series["requests"][m][r.bucket] += r.requests
        series["tokens"][m][r.bucket] += r.input_tokens + r.output_tokens
        series["cost"][m][r.bucket] += round(r.cost, 6)
    return {
        "x": [(since + i * width) // 1000 for i in range(count)],
        "models": models,
        "daily": width >= DAY_MS,
        **series,
    }


def summarise(
    rows: list[UsageRow], statuses: list[StatusCount]
) -> tuple[Totals, list[Totals], list[tuple[str, int, str]]]:
    total = Totals(model="All models")
    by_model: dict[str, Totals] = {}
    for r in rows:
        name = r.model or NO_MODEL
        by_model.setdefault(name, Totals(model=name)).add(r)
        total.add(r)
    per_model = sorted(by_model.values(), key=lambda t: (-t.requests, t.model))
    errors = [
        (
            str(s.status_code) if s.status_code is not None else "no answer",
            s.requests,
            percent(s.requests, total.requests),
        )
        for s in statuses
    ]
    return total, per_model, errors


async def _usage(request: Request, signed: Signed) -> Response:
    choice = request.query_params.get("range", "") or DEFAULT_WINDOW
    if choice not in WINDOWS:
        raise InvalidRequest("Unknown time range: use 24h, 7d or 30d", param="range")
    since, until, width, count = window(choice, int(time.time() * 1000))
    rows, statuses = await container(request).logs.usage(signed.principal, since, until, width)
    total, per_model, errors = summarise(rows, statuses)
    data = chart_data(rows, [t.model for t in per_model], since, width, count)
    context = page_context(
        request,
        signed,
        windows=[(value, label) for value, (label, _, _) in WINDOWS.items()],
        choice=choice,
        total=total,
        per_model=per_model,
        errors=errors,
        since=since,
        until=until,
        # Escaped by autoescape like any text; the script reads it back with JSON.parse.
        chart_json=orjson.dumps(data).decode(),
    )
    return renderer(request).render(request, "usage.html", context)


usage_page = page(_usage)
