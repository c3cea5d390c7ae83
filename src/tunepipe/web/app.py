"""Mounting the UI on the app: its pages at ``/`` and its static files at ``/static``."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from tunepipe.web import pages
from tunepipe.web.render import STATIC, Pages

STATIC_PATH = "/static"


def install(app: FastAPI) -> None:
    app.state.web_pages = Pages()
    get, post = ["GET"], ["POST"]
    add = app.add_route
    add("/", pages.home, get, include_in_schema=False)
    add("/sign-in", pages.sign_in_form, get, include_in_schema=False)
    add("/sign-in", pages.sign_in, post, include_in_schema=False)
    add("/sign-out", pages.sign_out, post, include_in_schema=False)
    add("/logs", pages.logs_page, get, include_in_schema=False)
    add("/logs/add-to-dataset", pages.add_to_dataset, post, include_in_schema=False)
    add("/logs/{call_id}", pages.log_detail_page, get, include_in_schema=False)
    add("/logs/{call_id}/metadata", pages.set_metadata, post, include_in_schema=False)
    for path in pages.LATER:
        add(path, pages.later_page, get, include_in_schema=False)
    app.mount(STATIC_PATH, StaticFiles(directory=str(STATIC)), name="web-static")
