"""Evaluations: the project's evals, a form that starts one, and an eval's page — its results as
they stand (Overall Performance, a win-rate chart, the model-vs-model matrix), refreshed while
its job runs, and its rows (every model's output and every verdict), a page at a time.

The data is the API's (``GET /api/v1/evals/{id}`` and ``/rows``): the same service calls and the
same summary (:func:`~tunepipe.domain.evals.summarise`), so the page and the API agree.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tunepipe.domain.evals import EvalType, eval_status
from tunepipe.errors import InvalidRequest, NotFound, PermissionDenied
from tunepipe.graders import BUILTIN
from tunepipe.protocol.evals import CreateEvalRequest
from tunepipe.services.evals.service import EvalRow, EvalState
from tunepipe.web import views
from tunepipe.web.guard import Signed, action, container, page, page_context, renderer
from tunepipe.web.render import redirect

ROWS_PAGE = 10
TYPES = (
    ("head_to_head", "Head-to-head (a judge compares two models' outputs)"),
    ("criteria", "Criteria (a judge passes or fails each output)"),
    ("code", "Code (a grader scores each output)"),
)
FORM_FIELDS = ("name", "dataset_id", "type", "models", "judge_model", "instructions", "grader", "source")
POLL_SECONDS = 1
DEFAULT_SOURCE = (
    "def grader(messages, tools, tool_choice, generated_output, dataset_output):\n"
    "    # a score between 0 and 1\n"
    '    return 1.0 if generated_output.get("content") == dataset_output.get("content") else 0.0\n'
)


def _eval_id(request: Request) -> str:
    eval_id = str(request.path_params["eval_id"])
    if "\x00" in eval_id or len(eval_id) > 200:
        raise NotFound("No such eval")
    return eval_id


def _progress(state: EvalState) -> dict[str, Any]:
    p = dict(state.job.progress) if state.job else {}
    total = p.get("total", state.entries)
    return {
        "done": int(p.get("done", 0) or 0),
        "total": int(total or 0),
        "stage": str(p.get("stage") or state.status.lower()),
        "counts": [(k, p.get(k, 0)) for k in ("generated", "reused", "judged", "errors")],
        "error": state.job.error_message if state.job else None,
    }


def _results(state: EvalState) -> dict[str, Any]:
    """What the results part shows: the table's rows, the chart's data, the matrix."""
    results = state.results
    models = results.get("models", [])
    h2h = state.eval.type is EvalType.HEAD_TO_HEAD
    matrix: dict[str, dict[str, float | None]] = results.get("matrix") or {}
    chart = {
        "label": "Win rate" if h2h else "Score",
        "models": [m["model"] for m in models],
        "values": [m["score"] for m in models],
    }
    return {
        "h2h": h2h,
        "models": models,
        "matrix_models": list(matrix),
        "matrix": matrix,
        "chart": chart,
        "judge_cost": results.get("judge_cost_usd", 0.0),
        "total_cost": results.get("cost_usd", 0.0),
    }


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _live_context(state: EvalState) -> dict[str, Any]:
    running = state.status in ("QUEUED", "RUNNING")
    return {
        "ev": state.eval,
        "status": state.status,
        "running": running,
        "progress": _progress(state),
        "results": _results(state),
        "rate": _rate,
        "poll": POLL_SECONDS,
    }


async def _list(request: Request, signed: Signed) -> Response:
    tp = container(request)
    found = await tp.evals.all(signed.principal)
    names = {d.id: d.name for d in await tp.datasets.all(signed.principal)}
    evals = []
    for ev, job in found:
        p = dict(job.progress) if job else {}
        evals.append(
            {
                "ev": ev,
                "dataset": names.get(ev.dataset_id, ev.dataset_id),
                "status": eval_status(job.status if job else None),
                "done": int(p.get("done", 0) or 0),
                "total": int(p.get("total", 0) or 0),
            }
        )
    context = page_context(request, signed, evals=evals)
    return renderer(request).render(request, "evaluations.html", context)


async def _form_context(
    request: Request, signed: Signed, given: dict[str, Any], error: str | None
) -> dict[str, Any]:
    tp = container(request)
    return page_context(
        request,
        signed,
        datasets=await tp.datasets.all(signed.principal),
        criteria=await tp.criteria.all(signed.principal),
        types=TYPES,
        builtins=sorted(BUILTIN),
        default_source=DEFAULT_SOURCE,
        given=given,
        chosen=set(given.get("criteria", [])),
        error=error,
    )


async def _new(request: Request, signed: Signed) -> Response:
    if signed.principal.read_only:
        raise PermissionDenied("This key is read-only: it can look, not change.")
    given: dict[str, Any] = {**dict.fromkeys(FORM_FIELDS, ""), "criteria": [], "both_orders": False}
    given.update(type="head_to_head", dataset_id=request.query_params.get("dataset_id", ""), num_entries="")
    context = await _form_context(request, signed, given, None)
    return renderer(request).render(request, "evaluation_new.html", context)


def _body(form: FormData) -> tuple[dict[str, Any], CreateEvalRequest]:
    """The form as typed (to show again) and the API's create body made from it."""
    given: dict[str, Any] = {k: str(form.get(k) or "") for k in FORM_FIELDS}
    given["criteria"] = [str(v) for v in form.getlist("criteria") if str(v)]
    given["both_orders"] = bool(form.get("both_orders"))
    given["num_entries"] = str(form.get("num_entries") or "").strip()
    models = [m.strip() for m in given["models"].splitlines() if m.strip()]
    kind = given["type"]
    body: dict[str, Any] = {
        "name": given["name"].strip(),
        "dataset_id": given["dataset_id"],
        "type": kind,
        "models": models,
    }
    if kind == "head_to_head":
        body["judge_model"] = given["judge_model"].strip() or None
        body["instructions"] = given["instructions"].strip() or None
        body["both_orders"] = given["both_orders"]
    elif kind == "criteria":
        body["criteria"] = given["criteria"] or None
    elif kind == "code":
        body["grader"] = given["source"] if given["grader"] == "custom" else (given["grader"] or None)
    if given["num_entries"]:
        if not given["num_entries"].isdigit():
            raise InvalidRequest("`Entries` must be a whole number", param="num_entries")
        body["num_entries"] = int(given["num_entries"])
    try:
        return given, CreateEvalRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        raise InvalidRequest(f"`{where}`: {first['msg']}", param=where) from exc


async def _create(request: Request, signed: Signed, form: FormData) -> Response:
    given: dict[str, Any] = {k: str(form.get(k) or "") for k in FORM_FIELDS}
    given.update(criteria=[str(v) for v in form.getlist("criteria")], both_orders=False, num_entries="")
    try:
        given, body = _body(form)
        ev, _ = await container(request).evals.create(signed.principal, body)
    except InvalidRequest as exc:
        context = await _form_context(request, signed, given, exc.message)
        return renderer(request).render(request, "evaluation_new.html", context, status_code=400)
    return redirect(request, f"/evaluations/{ev.id}")


async def _detail(request: Request, signed: Signed) -> Response:
    tp = container(request)
    state = await tp.evals.get(signed.principal, _eval_id(request))
    try:
        dataset = (await tp.datasets.get(signed.principal, state.eval.dataset_id)).name
    except NotFound:
        dataset = state.eval.dataset_id
    context = page_context(request, signed, dataset=dataset, entries=state.entries, **_live_context(state))
    return renderer(request).render(request, "evaluation.html", context)


async def _live(request: Request, signed: Signed) -> Response:
    """The part of an eval's page that changes while it runs (htmx polls it)."""
    state = await container(request).evals.get(signed.principal, _eval_id(request))
    context = page_context(request, signed, **_live_context(state))
    return renderer(request).render(request, "evaluation_live.html", context)


def _row(row: EvalRow, models: tuple[str, ...]) -> dict[str, Any]:
    data = row.entry.data
    outputs = [(m, views.message(row.outputs[m].output) if m in row.outputs else None) for m in models]
    return {
        "id": row.entry.id,
        "messages": [views.message(m) for m in data.messages],
        "expected": views.message(data.output) if data.output is not None else None,
        "outputs": outputs,
        "judgements": row.judgements,
    }


async def _rows(request: Request, signed: Signed) -> Response:
    eval_id = _eval_id(request)
    raw = request.query_params.get("offset", "0")
    if not raw.isdigit():
        raise InvalidRequest("`offset` must be a whole number", param="offset")
    offset = int(raw)
    tp = container(request)
    state = await tp.evals.get(signed.principal, eval_id)
    found, total = await tp.evals.rows(signed.principal, eval_id, offset=offset, limit=ROWS_PAGE)
    context = page_context(
        request,
        signed,
        ev=state.eval,
        rows=[_row(r, state.eval.models) for r in found],
        total=total,
        first=offset + 1,
        last=offset + len(found),
        prev_url=f"?offset={max(0, offset - ROWS_PAGE)}" if offset > 0 else None,
        next_url=f"?offset={offset + ROWS_PAGE}" if offset + ROWS_PAGE < total else None,
    )
    return renderer(request).render(request, "evaluation_rows.html", context)


evaluations_page = page(_list)
new_evaluation_page = page(_new)
create_evaluation = action(_create)
evaluation_page = page(_detail)
evaluation_live = page(_live)
evaluation_rows_page = page(_rows)

GET, POST = ["GET"], ["POST"]
ROUTES = (
    ("/evaluations", evaluations_page, GET),
    ("/evaluations", create_evaluation, POST),
    ("/evaluations/new", new_evaluation_page, GET),
    ("/evaluations/{eval_id}", evaluation_page, GET),
    ("/evaluations/{eval_id}/live", evaluation_live, GET),
    ("/evaluations/{eval_id}/rows", evaluation_rows_page, GET),
)
