"""Admin keys in the service layer: ``TUNEPIPE_ADMIN_KEY`` registered once at start-up, never a
project's key; the authenticator keeps admin and project keys apart; a revoked admin key is
refused at once in the process that revoked it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import migrated_engine
from tunepipe.db.database import Database
from tunepipe.domain.keys import ADMIN_PREFIX, generate_key
from tunepipe.domain.projects import Admin
from tunepipe.errors import AuthenticationFailed, Conflict, PermissionDenied
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.projects.auth import Authenticator
from tunepipe.services.projects.service import ProjectService


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    for engine in migrated_engine("sqlite", tmp_path):
        yield Database(engine)


async def test_admin_key_from_the_environment_is_registered_once(db: Database) -> None:
    projects = ProjectService(db)
    pinned = generate_key(ADMIN_PREFIX)
    for _ in range(2):  # every start registers it if it is new
        await projects.bootstrap(None, pinned)
    keys = await projects.list_admin_keys()
    assert [k.name for k in keys] == ["from TUNEPIPE_ADMIN_KEY"]
    assert keys[0].key_prefix == pinned[:10]
    admin = await Authenticator(db, ttl_s=60).admin(f"Bearer {pinned}")
    assert admin == Admin(key_id=keys[0].id)


async def test_admin_key_from_the_environment_cannot_be_a_project_key(db: Database) -> None:
    projects = ProjectService(db)
    project_key = f"opk_{uuid.uuid4().hex}{uuid.uuid4().hex[:10]}"
    with pytest.raises(Conflict, match="TUNEPIPE_ADMIN_KEY is a project's API key"):
        await projects.bootstrap(project_key, project_key)
    assert await projects.list_admin_keys() == []


async def test_admin_and_project_keys_are_refused_where_the_other_belongs(db: Database) -> None:
    projects = ProjectService(db)
    _, read_write, read_only = await projects.create(f"p-{uuid.uuid4().hex[:8]}")
    _, admin_key = await projects.create_admin_key("ops")
    assert admin_key.startswith(ADMIN_PREFIX)
    auth = Authenticator(db, ttl_s=60)
    for project_key in (read_write, read_only):
        with pytest.raises(PermissionDenied) as refused:
            await auth.admin(f"Bearer {project_key}")
        assert refused.value.code == "admin_required"
    for use in (auth.principal, auth.writer):
        with pytest.raises(PermissionDenied) as refused:
            await use(f"Bearer {admin_key}")
        assert refused.value.code == "project_key_required"
    assert isinstance(await auth.holder(f"Bearer {admin_key}"), Admin)


async def test_admin_key_revoked_is_refused_at_once(db: Database) -> None:
    feed = ChangeFeed(db, poll_s=3600)
    projects = ProjectService(db, feed)
    auth = Authenticator(db, ttl_s=3600, feed=feed)
    info, admin_key = await projects.create_admin_key("short-lived")
    await auth.admin(f"Bearer {admin_key}")  # now remembered
    await projects.revoke_admin_key(info.key_prefix + "…")  # as `admin list-keys` shows it
    with pytest.raises(AuthenticationFailed):
        await auth.admin(f"Bearer {admin_key}")
    assert await projects.list_admin_keys() == []
