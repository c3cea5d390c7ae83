"""Fine-tunes: the project's models (list with status, a form that trains one from a dataset),
one model's page (live progress polled by htmx, the loss curve, hyperparameters, test-set
outputs beside the dataset's, adapter and merged-weights downloads), and cancelling a model
still training.

The pages call the services behind ``/api/v1/models`` (``services/fine_tunes``). Downloads go
through UI routes that stream the same archives as ``GET /api/v1/models/{slug}/adapter`` and
``…/weights``: those take a bearer key, the browser has a session.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from tunepipe.domain.fine_tunes import UNFINISHED, TestOutput
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.models import CreateModelRequest
from tunepipe.web.guard import Signed, action, container, page, page_context, renderer
from tunepipe.web.render import SECURITY_HEADERS, redirect

DTYPES = ("bf16", "fp16", "fp32")
HYPER_FIELDS = ("num_epochs", "learning_rate_multiplier", "batch_size")


def _slug(request: Request) -> str:
    value = str(request.path_params["slug"])
    if "\x00" in value or len(value) > 300:
        raise NotFound("No such model")
    return value


# ---------------------------------------------------------------------- list, create


async def _choices(request: Request, signed: Signed) -> dict[str, Any]:
    tp = container(request)
    datasets = [] if signed.principal.read_only else await tp.datasets.all(signed.principal)
    bases = [] if signed.principal.read_only else await tp.base_models.all()
    return {"datasets": datasets, "bases": [b.name for b in bases if b.kind != "lora"]}


async def _list_page(
    request: Request,
    signed: Signed,
    *,
    given: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    tp = container(request)
    details = await tp.fine_tunes.details(await tp.fine_tunes.all(signed.principal))
    names = {d.id: d.name for d in await tp.datasets.all(signed.principal)}
    fields = ("dataset_id", "base_model", "slug", *HYPER_FIELDS)
    given = given or {k: request.query_params.get("dataset", "") if k == "dataset_id" else "" for k in fields}
    context = page_context(
        request,
        signed,
        models=details,
        dataset_names=names,
        given=given,
        error=error,
        **await _choices(request, signed),
    )
    return renderer(request).render(request, "fine_tunes.html", context, status)


async def _list(request: Request, signed: Signed) -> Response:
    return await _list_page(request, signed)


def _create_body(given: dict[str, str]) -> CreateModelRequest:
    sft: dict[str, Any] = {}
    for name in HYPER_FIELDS:
        raw = given.get(name, "").strip()
        if raw:
            try:
                sft[name] = float(raw) if name == "learning_rate_multiplier" else int(raw)
            except ValueError as exc:
                raise InvalidRequest(
                    f"{name.replace('_', ' ').capitalize()} must be a number", param=name
                ) from exc
    config: dict[str, Any] = {"provider": "openpipe", "baseModel": given.get("base_model", "")}
    if sft:
        config["sft_hyperparameters"] = sft
    try:
        return CreateModelRequest.model_validate(
            {
                "datasetId": given.get("dataset_id", ""),
                "slug": given.get("slug", ""),
                "trainingConfig": config,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith("openpipe"))
        raise InvalidRequest(f"{where}: {first['msg']}", param=where) from exc


async def _create(request: Request, signed: Signed, form: FormData) -> Response:
    """Validated by the API's ``create``; a refusal shows the form again, as typed (400)."""
    fields = ("dataset_id", "base_model", "slug", *HYPER_FIELDS)
    given = {k: str(form.get(k) or "") for k in fields}
    try:
        if any("\x00" in v for v in given.values()):
            raise InvalidRequest("Fields cannot contain NUL characters")
        ft = await container(request).fine_tunes.create(signed.principal, _create_body(given))
    except (InvalidRequest, NotFound) as exc:
        return await _list_page(request, signed, given=given, error=exc.message, status=exc.status_code)
    return redirect(request, f"/fine-tunes/{ft.slug}")


# ---------------------------------------------------------------------- one model


def _progress(detail_progress: dict[str, Any], status: str) -> dict[str, Any]:
    p = dict(detail_progress)
    step, total = p.get("step"), p.get("total_steps")
    p["percent"] = (
        round(100 * step / total) if isinstance(step, int) and isinstance(total, int) and total else None
    )
    p["live"] = status in UNFINISHED
    return p


def _chart(events: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """uPlot's columns: steps, train loss and eval loss (null where a step has none)."""
    by_step: dict[int, list[float | None]] = {}
    for e in events:
        step = e.get("step")
        if not isinstance(step, int):
            continue
        row = by_step.setdefault(step, [None, None])
        if isinstance(e.get("loss"), int | float):
            row[0] = float(e["loss"])
        if isinstance(e.get("eval_loss"), int | float):
            row[1] = float(e["eval_loss"])
    steps = sorted(by_step)
    return {
        "step": steps,
        "loss": [by_step[s][0] for s in steps],
        "eval_loss": [by_step[s][1] for s in steps],
    }


def _chart_context(chart: dict[str, list[Any]]) -> dict[str, Any]:
    return {"chart": orjson.dumps(chart).decode(), "points": len(chart["step"])}


def _outputs(outputs: list[TestOutput], expected: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    def text(message: dict[str, Any] | None) -> str:
        if not message:
            return ""
        content = message.get("content")
        if isinstance(content, str):
            return content
        return orjson.dumps(message.get("tool_calls") or content).decode()

    return [
        {
            "entry_id": o.entry_id,
            "expected": text(expected.get(o.entry_id)),
            "output": text(o.output) if o.output else (o.error_message or ""),
            "failed": o.output is None,
            "match": o.exact_match,
        }
        for o in outputs
    ]


async def _model_context(request: Request, signed: Signed) -> dict[str, Any]:
    tp = container(request)
    ft = await tp.fine_tunes.get(signed.principal, _slug(request))
    detail = await tp.fine_tunes.detail(ft)
    return {"ft": ft, "progress": _progress(detail.progress, ft.status)}


async def _model(request: Request, signed: Signed) -> Response:
    tp = container(request)
    context = await _model_context(request, signed)
    ft = context["ft"]
    _, outputs = await tp.fine_tunes.test_outputs(signed.principal, ft.slug)
    expected = await tp.fine_tunes.test_expected(signed.principal, ft.slug) if outputs else {}
    dataset = None
    if ft.dataset_id:
        try:
            dataset = await tp.datasets.get(signed.principal, ft.dataset_id)
        except NotFound:
            dataset = None  # deleted since: the model keeps its copy of the rows
    ctx = page_context(
        request,
        signed,
        **context,
        dataset=dataset,
        **_chart_context(_chart(await tp.fine_tunes.loss_history(signed.principal, ft.slug))),
        hyperparameters=ft.hyperparameters,
        outputs=_outputs(outputs, expected),
        downloadable=ft.status == "DEPLOYED",
        dtypes=DTYPES,
    )
    return renderer(request).render(request, "fine_tune.html", ctx)


async def _live(request: Request, signed: Signed) -> Response:
    """The progress fragment htmx polls while the model trains (it stops polling once done)."""
    tp = container(request)
    context = await _model_context(request, signed)
    chart = _chart(await tp.fine_tunes.loss_history(signed.principal, context["ft"].slug))
    ctx = page_context(request, signed, **context, **_chart_context(chart))
    return renderer(request).render(request, "fine_tune_live.html", ctx)


async def _cancel(request: Request, signed: Signed, form: FormData) -> Response:
    ft = await container(request).fine_tunes.cancel(signed.principal, _slug(request))
    return redirect(request, f"/fine-tunes/{ft.slug}")


async def _adapter(request: Request, signed: Signed) -> Response:
    ft, data = await container(request).fine_tunes.adapter_archive(signed.principal, _slug(request))
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{ft.slug}-adapter.tar.gz"'}
    return Response(data, media_type="application/gzip", headers=headers)


async def _weights(request: Request, signed: Signed) -> Response:
    dtype = request.query_params.get("dtype", "bf16")
    if dtype not in DTYPES:
        raise InvalidRequest(f"dtype must be one of {', '.join(DTYPES)}", param="dtype")
    slug = _slug(request)
    archive = await container(request).fine_tunes.merged_archive(signed.principal, slug, dtype)
    return FileResponse(
        archive, media_type="application/gzip", filename=f"{slug}-{dtype}.tar.gz", headers=SECURITY_HEADERS
    )


fine_tunes_page = page(_list)
create_fine_tune = action(_create)
fine_tune_page = page(_model)
fine_tune_live = page(_live)
cancel_fine_tune = action(_cancel)
adapter_download = page(_adapter)
weights_download = page(_weights)
