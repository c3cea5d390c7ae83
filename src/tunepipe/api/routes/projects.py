"""``/projects``: the installation's projects, for admin keys only (a project's key never learns
what other projects exist). Creating a project answers with its two keys, shown this once."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tunepipe.api.deps import AdminDep, State
from tunepipe.api.json import json_response
from tunepipe.api.openapi import answers
from tunepipe.protocol.answers_admin import NewProject, ProjectDeleted, ProjectList
from tunepipe.protocol.projects import CreateProjectBody, new_project_view, project_view
from tunepipe.protocol.types import Id

router = APIRouter(tags=["projects"])


@router.get("/projects", responses=answers(ProjectList))
async def list_projects(state: State, caller: AdminDep) -> Response:
    projects = await state.projects.all()
    return json_response({"object": "list", "data": [project_view(p) for p in projects]})


@router.post("/projects", status_code=201, responses=answers(NewProject, 201, errors=[409]))
async def create_project(body: CreateProjectBody, state: State, caller: AdminDep) -> Response:
    project, read_write, read_only = await state.projects.create(body.name)
    return json_response(new_project_view(project, read_write, read_only), status_code=201)


@router.delete("/projects/{name}", responses=answers(ProjectDeleted))
async def delete_project(name: Id, state: State, caller: AdminDep) -> Response:
    project = await state.projects.delete(name)
    return json_response({"id": project.id, "object": "project", "name": project.name, "deleted": True})
