"""API keys from the authenticator's cache: a known key is looked up once and then served from
memory; concurrent first uses share one lookup; an unknown token is never remembered, so it
neither hides a key created a moment later nor, however many are tried, pushes real keys out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from conftest import migrated_engine
from tunepipe.db.database import Database
from tunepipe.db.projects import create_api_key, create_project
from tunepipe.errors import AuthenticationFailed, DatabaseUnavailable, ReadOnlyKey
from tunepipe.services.projects import auth
from tunepipe.services.projects.auth import Authenticator


class CountingDatabase(Database):
    """A real database that counts the transactions run through it."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.runs = 0

    async def run(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.runs += 1
        return await super().run(fn, *args, **kwargs)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[CountingDatabase]:
    for engine in migrated_engine("sqlite", tmp_path):
        yield CountingDatabase(engine)


def key_of(db: Database, *, read_only: bool = False, key: str | None = None) -> str:
    project = db.run_sync(create_project, f"p-{uuid.uuid4().hex[:8]}")
    return db.run_sync(create_api_key, project.id, read_only=read_only, key=key)[1]


async def test_a_known_key_is_looked_up_once(db: CountingDatabase) -> None:
    key = key_of(db)
    authenticator = Authenticator(db, ttl_s=60)
    principals = await asyncio.gather(*(authenticator.principal(f"Bearer {key}") for _ in range(20)))
    assert len({p.key_id for p in principals}) == 1
    assert db.runs == 1  # twenty concurrent first uses, one lookup
    await authenticator.principal(f"Bearer {key}")
    assert db.runs == 1


async def test_an_unknown_token_is_not_remembered(db: CountingDatabase) -> None:
    authenticator = Authenticator(db, ttl_s=60)
    token = f"opk_{uuid.uuid4().hex}"
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await authenticator.principal(f"Bearer {token}")
    assert db.runs == 3
    key_of(db, key=token)  # created by another process a moment later
    assert (await authenticator.principal(f"Bearer {token}")).project is not None


async def test_made_up_tokens_do_not_push_real_keys_out(
    db: CountingDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "MAX_CACHED_KEYS", 50)
    keys = [key_of(db) for _ in range(40)]
    authenticator = Authenticator(db, ttl_s=60)
    for key in keys:
        await authenticator.principal(f"Bearer {key}")
    looked_up = db.runs
    for _ in range(500):
        with pytest.raises(AuthenticationFailed):
            await authenticator.principal(f"Bearer opk_{uuid.uuid4().hex}")
    runs = db.runs
    for key in keys:
        await authenticator.principal(f"Bearer {key}")
    assert db.runs == runs and looked_up == len(keys)  # every real key still served from memory


async def test_writer_refuses_a_read_only_key(db: CountingDatabase) -> None:
    authenticator = Authenticator(db, ttl_s=60)
    with pytest.raises(ReadOnlyKey):
        await authenticator.writer(f"Bearer {key_of(db, read_only=True)}")
    with pytest.raises(AuthenticationFailed):
        await authenticator.principal("Basic abc")
    with pytest.raises(AuthenticationFailed):
        await authenticator.principal(None)


class FlakyDatabase(Database):
    """A real database that can be made unreachable (every transaction refused)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.down = False

    async def run(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise OperationalError("SELECT", {}, ConnectionRefusedError("connection refused"))
        return await super().run(fn, *args, **kwargs)


async def test_auth_database_unreachable_serves_recent_keys_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for engine in migrated_engine("sqlite", tmp_path):
        db = FlakyDatabase(engine)
        seen, other = key_of(db), key_of(db)
        authenticator = Authenticator(db, ttl_s=0.01, stale_max_s=3600)
        known = await authenticator.principal(f"Bearer {seen}")
        db.down = True
        await asyncio.sleep(0.02)  # past the TTL: the next use reads the database again
        for _ in range(5):
            assert await authenticator.principal(f"Bearer {seen}") == known  # served as last read
        with pytest.raises(DatabaseUnavailable) as refused:
            await authenticator.principal(f"Bearer {other}")  # never read: not a 401, not a 500
        assert refused.value.status_code == 503 and refused.value.code == "database_unavailable"
        assert len([r for r in caplog.records if "database unreachable" in r.getMessage()]) == 1
        authenticator.forget(known.key_id)  # a change notice (revoked, say): no longer served
        with pytest.raises(DatabaseUnavailable):
            await authenticator.principal(f"Bearer {seen}")
        db.down = False
        assert await authenticator.principal(f"Bearer {seen}") == known
        short = Authenticator(db, ttl_s=0.01, stale_max_s=0.05)
        await short.principal(f"Bearer {seen}")
        db.down = True
        await asyncio.sleep(0.1)  # older than stale_max_s: refused
        with pytest.raises(DatabaseUnavailable):
            await short.principal(f"Bearer {seen}")
