"""Mounting the UI on the app: its pages at ``/`` and its static files at ``/static``."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from tunepipe.web import logs, sections, sign_in
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
    add("/logs", logs.logs_page, get, include_in_schema=False)
    add("/logs/add-to-dataset", logs.add_to_dataset, post, include_in_schema=False)
    add("/logs/{call_id}", logs.log_detail_page, get, include_in_schema=False)
    add("/logs/{call_id}/metadata", logs.set_metadata, post, include_in_schema=False)
    for path in sections.LATER:
        add(path, sections.later_page, get, include_in_schema=False)
    app.mount(STATIC_PATH, StaticFiles(directory=str(STATIC)), name="web-static")
