"""Projects on the wire (``/projects``, admin keys only): a project as lists show it, the body
that creates one, and the keys a new project comes with (shown once: only hashes are stored)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.projects import Project
from tunepipe.protocol.logs import iso
from tunepipe.protocol.types import Text


class CreateProjectBody(BaseModel):
    """``POST /projects``: ``{name}``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[Text, Field(min_length=1, max_length=200, pattern=r"\S")]


def project_view(p: Project) -> dict[str, Any]:
    return {"id": p.id, "object": "project", "name": p.name, "created_at": iso(p.created_at)}


def new_project_view(p: Project, read_write_key: str, read_only_key: str) -> dict[str, Any]:
    return project_view(p) | {"api_keys": {"read_write": read_write_key, "read_only": read_only_key}}
