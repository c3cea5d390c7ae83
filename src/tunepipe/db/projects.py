"""Projects and their API keys."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from tunepipe.db.schema import api_keys, projects
from tunepipe.domain.clock import now_ms
from tunepipe.domain.keys import display_prefix, generate_key, hash_key
from tunepipe.domain.projects import ApiKeyInfo, Principal, Project
from tunepipe.errors import Conflict, NotFound

DEFAULT_PROJECT = "default"


def create_project(conn: Connection, name: str) -> Project:
    if find_project(conn, name) is not None:
        raise Conflict(f"A project named {name!r} already exists")
    project = Project(id=str(uuid.uuid4()), name=name, created_at=now_ms())
    try:
        conn.execute(insert(projects).values(id=project.id, name=name, created_at=project.created_at))
    except IntegrityError as exc:  # created by another process since the check
        raise Conflict(f"A project named {name!r} already exists") from exc
    return project


def list_projects(conn: Connection) -> list[Project]:
    rows = conn.execute(select(projects).order_by(projects.c.created_at)).all()
    return [Project(id=r.id, name=r.name, created_at=r.created_at) for r in rows]


def find_project(conn: Connection, name: str) -> Project | None:
    row = conn.execute(select(projects).where(projects.c.name == name)).first()
    return Project(id=row.id, name=row.name, created_at=row.created_at) if row else None


def project_by_id(conn: Connection, project_id: str) -> Project | None:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).first()
    return Project(id=row.id, name=row.name, created_at=row.created_at) if row else None


def get_project(conn: Connection, name: str) -> Project:
    project = find_project(conn, name)
    if project is None:
        raise NotFound(f"No project named {name!r}")
    return project


def create_api_key(
    conn: Connection, project_id: str, *, read_only: bool = False, name: str = "", key: str | None = None
) -> tuple[ApiKeyInfo, str]:
    """Store a new key (or adopt ``key``, e.g. from ``TUNEPIPE_API_KEY``); return it in plain once."""
    plain = key or generate_key()
    if principal_for_key(conn, plain) is not None:
        raise Conflict("That API key is already registered")
    info = ApiKeyInfo(
        id=str(uuid.uuid4()),
        project_id=project_id,
        name=name,
        key_prefix=display_prefix(plain),
        read_only=read_only,
        created_at=now_ms(),
    )
    try:
        conn.execute(
            insert(api_keys).values(
                id=info.id,
                project_id=project_id,
                name=name,
                key_hash=hash_key(plain),
                key_prefix=info.key_prefix,
                read_only=read_only,
                created_at=info.created_at,
            )
        )
    except IntegrityError as exc:
        raise Conflict("That API key is already registered") from exc
    return info, plain


def list_api_keys(conn: Connection, project_id: str | None = None) -> list[ApiKeyInfo]:
    query = select(api_keys).order_by(api_keys.c.created_at)
    if project_id is not None:
        query = query.where(api_keys.c.project_id == project_id)
    return [
        ApiKeyInfo(
            id=r.id,
            project_id=r.project_id,
            name=r.name,
            key_prefix=r.key_prefix,
            read_only=r.read_only,
            created_at=r.created_at,
        )
        for r in conn.execute(query)
    ]


def principal_for_key(conn: Connection, plain_key: str) -> Principal | None:
    query = (
        select(
            api_keys.c.id,
            api_keys.c.read_only,
            projects.c.id.label("pid"),
            projects.c.name,
            projects.c.created_at,
        )
        .join(projects, projects.c.id == api_keys.c.project_id)
        .where(api_keys.c.key_hash == hash_key(plain_key))
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    return Principal(
        project=Project(id=row.pid, name=row.name, created_at=row.created_at),
        key_id=row.id,
        read_only=row.read_only,
    )


def ensure_default_project(
    conn: Connection, api_key: str | None, *, create_key: bool = True
) -> tuple[Project, str | None]:
    """Make sure the default project exists with a key; return a newly created key, if any.

    With ``api_key`` set (``TUNEPIPE_API_KEY``), that key is registered if it is new, so a
    deployment can pin its key in the environment.
    """
    project = find_project(conn, DEFAULT_PROJECT) or create_project(conn, DEFAULT_PROJECT)
    if api_key:
        if principal_for_key(conn, api_key) is None:
            create_api_key(conn, project.id, name="from TUNEPIPE_API_KEY", key=api_key)
        return project, None
    if not create_key or list_api_keys(conn, project.id):
        return project, None
    _, plain = create_api_key(conn, project.id, name="default")
    return project, plain
