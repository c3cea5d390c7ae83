"""Projects and their API keys, with each key's rate limits; the administrators' keys.

A key's limits are three nullable columns (null: no limit); a key with none reads back as
``limits=None``, so the hot path can tell "nothing to count" from one attribute.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tunepipe.db.schema import admin_keys, api_keys, projects
from tunepipe.domain.clock import now_ms
from tunepipe.domain.keys import ADMIN_PREFIX, display_prefix, generate_key, hash_key
from tunepipe.domain.projects import Admin, AdminKeyInfo, ApiKeyInfo, KeyLimits, Principal, Project
from tunepipe.errors import Conflict, InvalidRequest, NotFound

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


def delete_project(conn: Connection, project_id: str) -> bool:
    """Remove a project; everything it owns goes with it (every reference cascades)."""
    return conn.execute(delete(projects).where(projects.c.id == project_id)).rowcount > 0


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


def _limits_of(row: Any) -> KeyLimits | None:
    limits = KeyLimits(rpm=row.rpm, tpm=row.tpm, max_concurrency=row.max_concurrency)
    return limits if limits.any else None


def _limit_columns(limits: KeyLimits | None) -> dict[str, int | None]:
    """The columns of ``limits``; 0 is stored as null (no limit), like a missing value."""
    limits = limits or KeyLimits()
    return {
        "rpm": limits.rpm or None,
        "tpm": limits.tpm or None,
        "max_concurrency": limits.max_concurrency or None,
    }


def _info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        key_prefix=row.key_prefix,
        read_only=row.read_only,
        created_at=row.created_at,
        limits=_limits_of(row),
    )


def create_api_key(
    conn: Connection,
    project_id: str,
    *,
    read_only: bool = False,
    name: str = "",
    key: str | None = None,
    limits: KeyLimits | None = None,
) -> tuple[ApiKeyInfo, str]:
    """Store a new key (or adopt ``key``, e.g. from ``TUNEPIPE_API_KEY``); return it in plain once."""
    plain = key or generate_key()
    if key_holder(conn, plain) is not None:
        raise Conflict("That API key is already registered")
    info = ApiKeyInfo(
        id=str(uuid.uuid4()),
        project_id=project_id,
        name=name,
        key_prefix=display_prefix(plain),
        read_only=read_only,
        created_at=now_ms(),
        limits=limits if limits is not None and limits.any else None,
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
                **_limit_columns(limits),
            )
        )
    except IntegrityError as exc:
        raise Conflict("That API key is already registered") from exc
    return info, plain


def list_api_keys(conn: Connection, project_id: str | None = None) -> list[ApiKeyInfo]:
    query = select(api_keys).order_by(api_keys.c.created_at)
    if project_id is not None:
        query = query.where(api_keys.c.project_id == project_id)
    return [_info(r) for r in conn.execute(query)]


def find_api_key(conn: Connection, ref: str, project_id: str | None = None) -> ApiKeyInfo:
    """The key ``ref`` names: its id, its prefix as lists show it (``opk_AbCdEf`` or
    ``opk_AbCdEf…``) or the key itself, within ``project_id`` (None: in any project)."""
    ref = ref.strip().removesuffix("…").removesuffix("...")
    c = api_keys.c
    query = select(api_keys).where(or_(c.id == ref, c.key_prefix == ref, c.key_hash == hash_key(ref)))
    if project_id is not None:
        query = query.where(c.project_id == project_id)
    rows = conn.execute(query.limit(2)).all()
    if not rows:
        raise NotFound(f"No API key {ref!r} here", param="key_id")
    if len(rows) > 1:
        raise InvalidRequest(f"{ref!r} matches more than one API key: name it by its id", param="key_id")
    return _info(rows[0])


def set_key_limits(conn: Connection, project_id: str, key_id: str, limits: KeyLimits | None) -> ApiKeyInfo:
    """Replace the key's limits (None, or a limit of None or 0: no limit); the key as it is now."""
    c = api_keys.c
    done = conn.execute(
        update(api_keys).where(c.id == key_id, c.project_id == project_id).values(**_limit_columns(limits))
    )
    if done.rowcount == 0:
        raise NotFound(f"No API key {key_id!r} here", param="key_id")
    return _info(conn.execute(select(api_keys).where(c.id == key_id)).one())


def delete_api_key(conn: Connection, project_id: str, key_id: str) -> ApiKeyInfo:
    """Revoke the project's key ``key_id``; the key as it was."""
    c = api_keys.c
    row = conn.execute(select(api_keys).where(c.id == key_id, c.project_id == project_id)).first()
    if row is None:
        raise NotFound(f"No API key {key_id!r} here", param="key_id")
    conn.execute(delete(api_keys).where(c.id == key_id))
    return _info(row)


def principal_for_key(conn: Connection, plain_key: str) -> Principal | None:
    query = (
        select(
            api_keys.c.id,
            api_keys.c.read_only,
            api_keys.c.rpm,
            api_keys.c.tpm,
            api_keys.c.max_concurrency,
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
        limits=_limits_of(row),
    )


def key_holder(conn: Connection, plain_key: str) -> Principal | Admin | None:
    """Whoever holds ``plain_key``: a project's key, else an administrator's, else nobody."""
    principal = principal_for_key(conn, plain_key)
    if principal is not None:
        return principal
    row = conn.execute(select(admin_keys.c.id).where(admin_keys.c.key_hash == hash_key(plain_key))).first()
    return Admin(key_id=row.id) if row else None


def _admin_info(row: Any) -> AdminKeyInfo:
    return AdminKeyInfo(id=row.id, name=row.name, key_prefix=row.key_prefix, created_at=row.created_at)


def create_admin_key(conn: Connection, *, name: str = "", key: str | None = None) -> tuple[AdminKeyInfo, str]:
    """Store a new admin key (or adopt ``key``); return it in plain once."""
    plain = key or generate_key(ADMIN_PREFIX)
    if key_holder(conn, plain) is not None:
        raise Conflict("That API key is already registered")
    info = AdminKeyInfo(
        id=str(uuid.uuid4()), name=name, key_prefix=display_prefix(plain), created_at=now_ms()
    )
    try:
        conn.execute(
            insert(admin_keys).values(
                id=info.id,
                name=name,
                key_hash=hash_key(plain),
                key_prefix=info.key_prefix,
                created_at=info.created_at,
            )
        )
    except IntegrityError as exc:
        raise Conflict("That API key is already registered") from exc
    return info, plain


def ensure_admin_key(conn: Connection, key: str) -> bool:
    """Register ``key`` (``TUNEPIPE_ADMIN_KEY``) as an admin key unless it is one; True if new."""
    holder = key_holder(conn, key)
    if isinstance(holder, Principal):
        raise Conflict("TUNEPIPE_ADMIN_KEY is a project's API key: an admin key must be a key of its own")
    if holder is None:
        create_admin_key(conn, name="from TUNEPIPE_ADMIN_KEY", key=key)
    return holder is None


def list_admin_keys(conn: Connection) -> list[AdminKeyInfo]:
    return [_admin_info(r) for r in conn.execute(select(admin_keys).order_by(admin_keys.c.created_at))]


def delete_admin_key(conn: Connection, ref: str) -> AdminKeyInfo:
    """Revoke the admin key ``ref`` names (its id, its prefix as lists show it, or the key)."""
    ref = ref.strip().removesuffix("…").removesuffix("...")
    c = admin_keys.c
    rows = conn.execute(
        select(admin_keys).where(or_(c.id == ref, c.key_prefix == ref, c.key_hash == hash_key(ref))).limit(2)
    ).all()
    if not rows:
        raise NotFound(f"No admin key {ref!r}", param="key_id")
    if len(rows) > 1:
        raise InvalidRequest(f"{ref!r} matches more than one admin key: name it by its id", param="key_id")
    conn.execute(delete(admin_keys).where(c.id == rows[0].id))
    return _admin_info(rows[0])


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
