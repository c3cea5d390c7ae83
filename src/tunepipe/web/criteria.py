"""Criteria: the project's criteria (latest version each), a criterion's versions, creating one
and editing it (an edit is a new version under the same name), and its alignment page — the
rows humans label PASS or FAIL, a job that has the judge go over them, and how well the judge
agrees with the humans.

The services are the API's (``/api/v1/criteria``): :class:`CriteriaService` and
:class:`Alignment`, whose statistics the page shows as they are.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tunepipe.domain.alignment import judge_says
from tunepipe.domain.jobs import JobKind
from tunepipe.errors import InvalidRequest, NotFound, PermissionDenied
from tunepipe.protocol.criteria import CreateCriterionRequest
from tunepipe.web import views
from tunepipe.web.guard import Signed, action, container, page, page_context, renderer
from tunepipe.web.render import redirect

FIELDS = ("name", "description", "instructions", "judge_model")
POLL_SECONDS = 1


def _param(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if "\x00" in value or len(value) > 300:
        raise NotFound(f"No such {name.replace('_', ' ')}")
    return value


def _read_only(signed: Signed) -> None:
    if signed.principal.read_only:
        raise PermissionDenied("This key is read-only: it can look, not change.")


async def _list(request: Request, signed: Signed) -> Response:
    found = await container(request).criteria.all(signed.principal)
    context = page_context(request, signed, criteria=found)
    return renderer(request).render(request, "criteria.html", context)


def _form_body(form: FormData, name: str | None) -> tuple[dict[str, str], CreateCriterionRequest]:
    given = {k: str(form.get(k) or "") for k in FIELDS}
    if name is not None:
        given["name"] = name
    body = {
        "name": given["name"].strip(),
        "instructions": given["instructions"].strip(),
        "judge_model": given["judge_model"].strip(),
        "description": given["description"].strip() or None,
    }
    try:
        return given, CreateCriterionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        raise InvalidRequest(f"`{where}`: {first['msg']}", param=where) from exc


def _form(
    request: Request, signed: Signed, given: dict[str, str], error: str | None, *, editing: bool
) -> Response:
    context = page_context(request, signed, given=given, error=error, editing=editing)
    return renderer(request).render(
        request, "criterion_form.html", context, status_code=400 if error else 200
    )


async def _new(request: Request, signed: Signed) -> Response:
    _read_only(signed)
    return _form(request, signed, dict.fromkeys(FIELDS, ""), None, editing=False)


async def _create(request: Request, signed: Signed, form: FormData) -> Response:
    given = {k: str(form.get(k) or "") for k in FIELDS}
    try:
        given, body = _form_body(form, None)
        made = await container(request).criteria.create(signed.principal, body)
    except InvalidRequest as exc:
        return _form(request, signed, given, exc.message, editing=False)
    return redirect(request, f"/criteria/{made.name}")


async def _detail(request: Request, signed: Signed) -> Response:
    name = _param(request, "name")
    tp = container(request)
    versions = await tp.criteria.versions(signed.principal, name)
    wanted = request.query_params.get("version", "")
    shown = next((v for v in versions if str(v.version) == wanted), versions[-1])
    # Each version's agreement with the humans on the alignment set, side by side.
    agreement = {c.version: stats for c, stats, _ in await tp.alignment.compare(signed.principal, name)}
    context = page_context(
        request,
        signed,
        criterion=shown,
        versions=versions,
        latest=versions[-1],
        agreement=agreement,
        ratio=_ratio,
    )
    return renderer(request).render(request, "criterion.html", context)


async def _edit(request: Request, signed: Signed) -> Response:
    _read_only(signed)
    latest = await container(request).criteria.get(signed.principal, _param(request, "name"))
    given = {
        "name": latest.name,
        "description": latest.description or "",
        "instructions": latest.instructions,
        "judge_model": latest.judge_model,
    }
    return _form(request, signed, given, None, editing=True)


async def _new_version(request: Request, signed: Signed, form: FormData) -> Response:
    """An edit: a new version under the same name (the name cannot change)."""
    tp = container(request)
    latest = await tp.criteria.get(signed.principal, _param(request, "name"))
    given = {k: str(form.get(k) or "") for k in FIELDS}
    given["name"] = latest.name
    try:
        given, body = _form_body(form, latest.name)
        await tp.criteria.create(signed.principal, body)
    except InvalidRequest as exc:
        return _form(request, signed, given, exc.message, editing=True)
    return redirect(request, f"/criteria/{latest.name}")


async def _alignment_context(request: Request, signed: Signed, name: str) -> dict[str, Any]:
    tp = container(request)
    criterion, stats, cost, disagreements = await tp.alignment.stats(signed.principal, name)
    _, rows = await tp.alignment.rows(signed.principal, name)
    shown: list[dict[str, Any]] = [
        {
            "row": r,
            "messages": [views.message(m) for m in r.messages],
            "output": views.message(r.output),
            "judge": j,
            "judge_says": judge_says(j.score) if j is not None and j.score is not None else None,
        }
        for r, j in rows
    ]
    disagreeing = {r.id for r, _ in disagreements}
    return {
        "criterion": criterion,
        "stats": stats,
        "cost": cost,
        "rows": shown,
        "disagreeing": disagreeing,
        "disagreements": [s for s, (r, _) in zip(shown, rows, strict=True) if r.id in disagreeing],
        "ratio": _ratio,
    }


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


async def _job_context(request: Request, signed: Signed, criterion_id: str) -> dict[str, Any]:
    job_id = request.query_params.get("job", "")
    if not job_id or "\x00" in job_id or len(job_id) > 200:
        return {"job": None}
    await container(request).criteria.get(signed.principal, criterion_id)  # the 404 first
    try:
        job = await container(request).jobs.get(signed.principal, job_id)
    except NotFound:
        return {"job": None}
    if job.kind != JobKind.ALIGN:
        return {"job": None}
    return {"job": job, "poll": POLL_SECONDS}


async def _alignment(request: Request, signed: Signed) -> Response:
    name = _param(request, "name")
    context = page_context(
        request,
        signed,
        name=name,
        polled=False,
        **await _alignment_context(request, signed, name),
        **await _job_context(request, signed, name),
    )
    return renderer(request).render(request, "criterion_alignment.html", context)


async def _alignment_part(request: Request, signed: Signed) -> Response:
    """The rows and the agreement (what a label or the judge's job changes), for htmx."""
    name = _param(request, "name")
    context = page_context(request, signed, **await _alignment_context(request, signed, name))
    return renderer(request).render(request, "criterion_alignment_part.html", context)


async def _job_part(request: Request, signed: Signed) -> Response:
    name = _param(request, "name")
    # Polled: once the job is done, the rows and the agreement are fetched again too.
    context = page_context(
        request, signed, name=name, polled=True, **await _job_context(request, signed, name)
    )
    return renderer(request).render(request, "criterion_job.html", context)


async def _label(request: Request, signed: Signed, form: FormData) -> Response:
    name, row_id = _param(request, "name"), _param(request, "row_id")
    raw = str(form.get("judgement") or "")
    if raw not in ("PASS", "FAIL", "none"):
        raise InvalidRequest("A label is PASS, FAIL or none", param="judgement")
    tp = container(request)
    await tp.alignment.label(signed.principal, name, row_id, None if raw == "none" else raw)
    if request.headers.get("hx-request"):
        return await _alignment_part(request, signed)
    return redirect(request, f"/criteria/{name}/alignment")


async def _add_row(request: Request, signed: Signed, form: FormData) -> Response:
    name = _param(request, "name")
    user, output = str(form.get("input") or ""), str(form.get("output") or "")
    if not user.strip() or not output.strip():
        raise InvalidRequest("A row needs an input and an output", param="input")
    judgement = str(form.get("judgement") or "")
    row: dict[str, Any] = {
        "messages": [{"role": "user", "content": user}],
        "output": {"role": "assistant", "content": output},
    }
    if judgement in ("PASS", "FAIL"):
        row["judgement"] = judgement
    await container(request).alignment.add(signed.principal, name, [row])
    return redirect(request, f"/criteria/{name}/alignment")


async def _run(request: Request, signed: Signed, form: FormData) -> Response:
    name = _param(request, "name")
    job = await container(request).alignment.start(signed.principal, name, rerun=bool(form.get("rerun")))
    return redirect(request, f"/criteria/{name}/alignment?job={job.id}")


criteria_page = page(_list)
new_criterion_page = page(_new)
create_criterion = action(_create)
criterion_page = page(_detail)
edit_criterion_page = page(_edit)
new_criterion_version = action(_new_version)
alignment_page = page(_alignment)
alignment_part = page(_alignment_part)
alignment_job_part = page(_job_part)
label_row = action(_label)
add_alignment_row = action(_add_row)
run_alignment = action(_run)

GET, POST = ["GET"], ["POST"]
ROUTES = (
    ("/criteria", criteria_page, GET),
    ("/criteria", create_criterion, POST),
    ("/criteria/new", new_criterion_page, GET),
    ("/criteria/{name}", criterion_page, GET),
    ("/criteria/{name}/edit", edit_criterion_page, GET),
    ("/criteria/{name}/versions", new_criterion_version, POST),
    ("/criteria/{name}/alignment", alignment_page, GET),
    ("/criteria/{name}/alignment/part", alignment_part, GET),
    ("/criteria/{name}/alignment/job", alignment_job_part, GET),
    ("/criteria/{name}/alignment/rows", add_alignment_row, POST),
    ("/criteria/{name}/alignment/run", run_alignment, POST),
    ("/criteria/{name}/alignment/{row_id}/label", label_row, POST),
)
