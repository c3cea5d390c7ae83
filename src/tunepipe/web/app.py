"""Mounting the UI on the app: its pages at ``/`` and its static files at ``/static``."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from tunepipe.web import criteria, datasets, evaluations, fine_tunes, logs, sections, sign_in
from tunepipe.web import settings as settings_pages
from tunepipe.web import usage as usage_pages
from tunepipe.web.render import STATIC, Pages

STATIC_PATH = "/static"


def install(app: FastAPI) -> None:
    app.state.web_pages = Pages()
    get, post = ["GET"], ["POST"]
    add = app.add_route
    add("/", sign_in.home, get, include_in_schema=False)
    add("/sign-in", sign_in.sign_in_form, get, include_in_schema=False)
    add("/sign-in", sign_in.sign_in, post, include_in_schema=False)
    add("/sign-out", sign_in.sign_out, post, include_in_schema=False)
    add("/usage", usage_pages.usage_page, get, include_in_schema=False)
    for path, endpoint, methods in settings_pages.ROUTES:
        add(path, endpoint, methods, include_in_schema=False)
    add("/logs", logs.logs_page, get, include_in_schema=False)
    add("/logs/add-to-dataset", logs.add_to_dataset, post, include_in_schema=False)
    add("/logs/{call_id}", logs.log_detail_page, get, include_in_schema=False)
    add("/logs/{call_id}/metadata", logs.set_metadata, post, include_in_schema=False)
    add("/datasets", datasets.datasets_page, get, include_in_schema=False)
    add("/datasets", datasets.create_dataset, post, include_in_schema=False)
    add("/datasets/{dataset_id}", datasets.dataset_page, get, include_in_schema=False)
    add("/datasets/{dataset_id}/upload", datasets.upload, post, include_in_schema=False)
    add("/datasets/{dataset_id}/export", datasets.export, get, include_in_schema=False)
    add("/datasets/{dataset_id}/entries/{entry_id}", datasets.entry_page, get, include_in_schema=False)
    add("/datasets/{dataset_id}/entries/{entry_id}", datasets.save_entry, post, include_in_schema=False)
    add("/datasets/{dataset_id}/pruning-rules", datasets.add_rule, post, include_in_schema=False)
    add(
        "/datasets/{dataset_id}/pruning-rules/{rule_id}/remove",
        datasets.remove_rule,
        post,
        include_in_schema=False,
    )
    add("/datasets/{dataset_id}/jobs", datasets.jobs_part, get, include_in_schema=False)
    add("/datasets/{dataset_id}/pruning", datasets.pruning_part, get, include_in_schema=False)
    add("/datasets/{dataset_id}/import-logs", datasets.import_logs, post, include_in_schema=False)
    add("/datasets/{dataset_id}/relabel", datasets.relabel, post, include_in_schema=False)
    add("/fine-tunes", fine_tunes.fine_tunes_page, get, include_in_schema=False)
    add("/fine-tunes", fine_tunes.create_fine_tune, post, include_in_schema=False)
    add("/fine-tunes/{slug}", fine_tunes.fine_tune_page, get, include_in_schema=False)
    add("/fine-tunes/{slug}/live", fine_tunes.fine_tune_live, get, include_in_schema=False)
    add("/fine-tunes/{slug}/cancel", fine_tunes.cancel_fine_tune, post, include_in_schema=False)
    add("/fine-tunes/{slug}/adapter", fine_tunes.adapter_download, get, include_in_schema=False)
    add("/fine-tunes/{slug}/weights", fine_tunes.weights_download, get, include_in_schema=False)
    for path, endpoint, methods in (*evaluations.ROUTES, *criteria.ROUTES):
        add(path, endpoint, methods, include_in_schema=False)
    for path in sections.LATER:
        add(path, sections.later_page, get, include_in_schema=False)
    app.mount(STATIC_PATH, StaticFiles(directory=str(STATIC)), name="web-static")
