"""Datasets: the project's datasets (list, create), one dataset's entries (split filter, keyset
pages), and what a read/write key may do there: upload JSONL, edit an entry, keep pruning rules,
export.

Every page calls the services the API's routes call (``services/datasets``): an upload is the
same all-or-nothing check-then-insert as ``POST /api/v1/datasets/{id}/upload`` (its errors carry
line numbers), an edit is validated by the same ``update_entry`` as ``PATCH …/entries/{id}``,
and the export streams the same JSONL as ``GET …/export``, with the session instead of a bearer
key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from pydantic import ValidationError
from starlette.concurrency import iterate_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tunepipe.domain.datasets import Dataset, EntryFilter, StoredEntry
from tunepipe.domain.jobs import JobKind, JobStatus
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.datasets import ImportLogsRequest, LogImportFilters, RelabelRequest, UpdateEntryRequest
from tunepipe.protocol.jobs import dataset_job_view
from tunepipe.protocol.models import catalog_view
from tunepipe.protocol.pruning import report_view
from tunepipe.web.guard import Signed, action, container, page, page_context, renderer
from tunepipe.web.render import SECURITY_HEADERS, redirect

PAGE_SIZE = 50
MAX_NAME = 200
PREVIEW = 160  # characters of an input or output shown in the entries table
MAX_TEXT = 500  # the longest filter value or model name a form accepts
DATASET_JOBS = (JobKind.IMPORT_LOGS.value, JobKind.RELABEL.value)
OPEN_JOBS = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def _id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if "\x00" in value or len(value) > 200:
        raise NotFound("No such dataset")
    return value


def _text(message: Any) -> str:
    """A message's text for a preview (tool calls and parts shown as compact JSON)."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str) and content:
        text = content
    elif content:
        text = orjson.dumps(content).decode()
    elif message.get("tool_calls"):
        text = orjson.dumps(message["tool_calls"]).decode()
    else:
        text = ""
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def entry_row(entry: StoredEntry) -> dict[str, Any]:
    messages = entry.data.messages
    last = next(
        (m for m in reversed(messages) if m.get("role") != "system"), messages[-1] if messages else {}
    )
    return {
        "id": entry.id,
        "split": entry.data.split,
        "input": _text(last),
        "output": _text(entry.data.output),
        "provenance": entry.provenance,
        "created_at": entry.created_at,
    }


# ---------------------------------------------------------------------- list, create


async def _list(request: Request, signed: Signed) -> Response:
    tp = container(request)
    datasets = await tp.datasets.all(signed.principal)
    counts = await tp.datasets.split_counts(signed.principal, [d.id for d in datasets])
    context = page_context(request, signed, datasets=datasets, counts=counts, error=None, name="")
    return renderer(request).render(request, "datasets.html", context)


async def _create(request: Request, signed: Signed, form: FormData) -> Response:
    name = str(form.get("name") or "").strip()
    if not name or len(name) > MAX_NAME or "\x00" in name:
        raise InvalidRequest(f"A dataset needs a name of 1 to {MAX_NAME} characters", param="name")
    ds = await container(request).datasets.create(signed.principal, name)
    return redirect(request, f"/datasets/{ds.id}")


# ---------------------------------------------------------------------- one dataset


async def _entries(request: Request, signed: Signed, ds: Dataset) -> dict[str, Any]:
    q = request.query_params
    split = q.get("split", "")
    if split and split not in ("TRAIN", "TEST"):
        raise InvalidRequest('`split` must be "TRAIN" or "TEST"', param="split")
    cursor = q.get("cursor") or None
    f = EntryFilter(split=split or None)
    entries, next_cursor = await container(request).datasets.page(
        signed.principal, ds.id, f, cursor, PAGE_SIZE
    )
    older = f"/datasets/{ds.id}?{urlencode({'split': split, 'cursor': next_cursor})}" if next_cursor else None
    return {
        "entries": [entry_row(e) for e in entries],
        "split": split,
        "older_url": older,
        "first_url": f"/datasets/{ds.id}" + (f"?split={split}" if split else "") if cursor else None,
    }


async def _jobs(request: Request, signed: Signed, ds: Dataset) -> dict[str, Any]:
    jobs = await container(request).jobs.list_jobs(signed.principal, kinds=DATASET_JOBS, subject_id=ds.id)
    views = [dataset_job_view(j) for j in jobs]
    return {"jobs": views, "jobs_open": any(j["status"] in OPEN_JOBS for j in views)}


async def _dataset_context(request: Request, signed: Signed, ds: Dataset) -> dict[str, Any]:
    tp = container(request)
    counts = await tp.datasets.split_counts(signed.principal, [ds.id])
    models = [] if signed.principal.read_only else await tp.catalog.models(signed.principal)
    return {
        "ds": ds,
        "counts": counts[ds.id],
        "models": [str(catalog_view(m)["id"]) for m in models],
        **await _jobs(request, signed, ds),
        **await _entries(request, signed, ds),
    }


async def _dataset(request: Request, signed: Signed) -> Response:
    ds = await container(request).datasets.get(signed.principal, _id(request, "dataset_id"))
    context = page_context(request, signed, **await _dataset_context(request, signed, ds))
    return renderer(request).render(request, "dataset.html", context)


async def _upload(request: Request, signed: Signed, form: FormData) -> Response:
    """The all-or-nothing upload; htmx gets the result (and the fresh entries) as fragments."""
    tp = container(request)
    ds = await tp.datasets.get(signed.principal, _id(request, "dataset_id"))
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        raise InvalidRequest("Choose a JSONL file to upload", param="file")
    result = await tp.datasets.upload(signed.principal, ds.id, file.file)
    ctx = page_context(request, signed, result=result, **await _dataset_context(request, signed, ds))
    status = 400 if result.error_count else 200
    if request.headers.get("hx-request"):
        # htmx swaps 2xx answers only: the errors are this fragment's content, not a failure.
        return renderer(request).render(request, "dataset_upload_result.html", ctx)
    return renderer(request).render(request, "dataset_upload.html", ctx, status)


async def _export(request: Request, signed: Signed) -> Response:
    tp = container(request)
    ds = await tp.datasets.get(signed.principal, _id(request, "dataset_id"))
    lines = tp.datasets.export_lines(signed.principal, ds.id, include_split=True)
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type="application/x-ndjson",
        headers={**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="dataset.jsonl"'},
    )


async def _jobs_part(request: Request, signed: Signed) -> Response:
    """The dataset's imports and relabels, polled by htmx while one is queued or running."""
    ds = await container(request).datasets.get(signed.principal, _id(request, "dataset_id"))
    context = page_context(request, signed, ds=ds, **await _jobs(request, signed, ds))
    return renderer(request).render(request, "_dataset_jobs.html", context)


def _form_text(form: FormData, name: str) -> str:
    value = str(form.get(name) or "").strip()
    if len(value) > MAX_TEXT or "\x00" in value:
        raise InvalidRequest(
            f"{name.replace('_', ' ').capitalize()}: at most {MAX_TEXT} characters", param=name
        )
    return value


def _import_body(form: FormData) -> ImportLogsRequest:
    model, status = _form_text(form, "model"), _form_text(form, "status")
    key, value = _form_text(form, "meta_key"), _form_text(form, "meta_value")
    contains, sample = _form_text(form, "contains"), _form_text(form, "sample_size")
    if status and not status.isdigit():
        raise InvalidRequest("Status must be an HTTP status code, such as 200", param="status")
    if sample and not sample.isdigit():
        raise InvalidRequest("Sample size must be a whole number", param="sample_size")
    filters = LogImportFilters(
        model=model or None,
        status=int(status) if status else None,
        metadata={key: value} if key else {},
        contains=contains or None,
    )
    return ImportLogsRequest(filters=filters, sample_size=int(sample) if sample else None)


async def _import_logs(request: Request, signed: Signed, form: FormData) -> Response:
    dataset_id = _id(request, "dataset_id")
    try:
        body = _import_body(form)
    except ValidationError as exc:
        raise InvalidRequest(str(exc.errors()[0]["msg"])) from exc
    await container(request).imports.start(signed.principal, dataset_id, body)
    return redirect(request, f"/datasets/{dataset_id}#jobs")


async def _relabel(request: Request, signed: Signed, form: FormData) -> Response:
    dataset_id = _id(request, "dataset_id")
    model, split = _form_text(form, "model"), _form_text(form, "split")
    if not model:
        raise InvalidRequest("Pick the model that writes the new outputs", param="model")
    if split not in ("", "TRAIN", "TEST"):
        raise InvalidRequest('`split` must be "TRAIN" or "TEST"', param="split")
    body = RelabelRequest(model=model, split="TRAIN" if split == "TRAIN" else "TEST" if split else None)
    await container(request).relabeling.start(signed.principal, dataset_id, body)
    return redirect(request, f"/datasets/{dataset_id}#jobs")


# ---------------------------------------------------------------------- an entry


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


async def _entry_page(
    request: Request,
    signed: Signed,
    entry: StoredEntry,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    ds = await container(request).datasets.get(signed.principal, entry.dataset_id)
    given = form or {
        "messages": _pretty(entry.data.messages),
        "output": _pretty(entry.data.output),
        "split": entry.data.split or "TRAIN",
    }
    context = page_context(
        request,
        signed,
        ds=ds,
        entry=entry,
        given=given,
        error=error,
        saved=request.query_params.get("saved") == "1",
    )
    return renderer(request).render(request, "dataset_entry.html", context, status)


async def _entry(request: Request, signed: Signed) -> Response:
    dataset_id, entry_id = _id(request, "dataset_id"), _id(request, "entry_id")
    entry = await container(request).datasets.get_entry(signed.principal, dataset_id, entry_id)
    return await _entry_page(request, signed, entry)


def _edit_body(given: dict[str, str]) -> UpdateEntryRequest:
    try:
        messages = orjson.loads(given["messages"])
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Input messages: not valid JSON ({exc})", param="messages") from exc
    try:
        output = orjson.loads(given["output"])
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Output: not valid JSON ({exc})", param="output") from exc
    if not isinstance(messages, list):
        raise InvalidRequest("Input messages must be a JSON array of messages", param="messages")
    if not isinstance(output, dict):
        raise InvalidRequest("Output must be one assistant message (a JSON object)", param="output")
    return UpdateEntryRequest(messages=[*messages, output], split=given["split"])


async def _save_entry(request: Request, signed: Signed, form: FormData) -> Response:
    """Validated by the API's own ``update_entry``; a refusal shows the form again, as typed,
    with the reason (400)."""
    dataset_id, entry_id = _id(request, "dataset_id"), _id(request, "entry_id")
    tp = container(request)
    entry = await tp.datasets.get_entry(signed.principal, dataset_id, entry_id)
    given = {k: str(form.get(k) or "") for k in ("messages", "output", "split")}
    try:
        await tp.datasets.update_entry(signed.principal, dataset_id, entry_id, _edit_body(given))
    except InvalidRequest as exc:
        return await _entry_page(request, signed, entry, form=given, error=exc.message, status=400)
    return redirect(request, f"/datasets/{dataset_id}/entries/{entry_id}?saved=1")


# ---------------------------------------------------------------------- pruning rules


async def _pruning_part(request: Request, signed: Signed) -> Response:
    """The rules and the tokens they save, loaded after the page: the report reads every entry's
    input, so it is only made when there are rules, and never holds up the entries."""
    tp = container(request)
    ds = await tp.datasets.get(signed.principal, _id(request, "dataset_id"))
    project_id = signed.principal.project.id
    if await tp.pruning.rules(project_id, ds.id):
        pruning = report_view(await tp.pruning.report(project_id, ds.id), tp.pruning.count_tokens)
    else:
        pruning = {"entries": ds.entry_count, "entriesChanged": 0, "tokensSaved": 0, "data": []}
    context = page_context(request, signed, ds=ds, pruning=pruning)
    return renderer(request).render(request, "_dataset_pruning.html", context)


async def _add_rule(request: Request, signed: Signed, form: FormData) -> Response:
    dataset_id = _id(request, "dataset_id")
    text = str(form.get("text") or "")
    if "\x00" in text:
        raise InvalidRequest("A rule cannot contain NUL characters", param="text")
    await container(request).pruning.add(signed.principal.project.id, dataset_id, text)
    return redirect(request, f"/datasets/{dataset_id}#pruning")


async def _remove_rule(request: Request, signed: Signed, form: FormData) -> Response:
    dataset_id, rule_id = _id(request, "dataset_id"), _id(request, "rule_id")
    await container(request).pruning.remove(signed.principal.project.id, dataset_id, rule_id)
    return redirect(request, f"/datasets/{dataset_id}#pruning")


datasets_page = page(_list)
create_dataset = action(_create)
dataset_page = page(_dataset)
upload = action(_upload)
export = page(_export)
entry_page = page(_entry)
save_entry = action(_save_entry)
add_rule = action(_add_rule)
remove_rule = action(_remove_rule)
jobs_part = page(_jobs_part)
pruning_part = page(_pruning_part)
import_logs = action(_import_logs)
relabel = action(_relabel)
