"""The pruning-rule service on a real, migrated SQLite database, with dataset rows inserted
directly: project scoping, ordering, the savings report, and the texts a fine-tune copies."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, insert

from tunepipe.db.database import Database
from tunepipe.db.engine import make_engine
from tunepipe.db.migrate import upgrade
from tunepipe.db.projects import create_project
from tunepipe.db.schema import dataset_entries, datasets
from tunepipe.domain.clock import now_ms
from tunepipe.domain.ids import uuid7
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.pruning import report_view
from tunepipe.services.datasets.pruning import PruningService
from tunepipe.services.fine_tunes.create import _rule_texts as rule_texts

SYSTEM = "You are a meticulous assistant. Always answer in valid JSON."


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'pr.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def make_dataset(engine: Engine, project_id: str, entries: list[list[dict[str, Any]]]) -> str:
    dataset_id = uuid7()
    now = now_ms()
    with engine.begin() as conn:
        conn.execute(
            insert(datasets).values(
                id=dataset_id,
                project_id=project_id,
                name="d",
                train_ratio=0.9,
                created_at=now,
                updated_at=now,
            )
        )
        for i, messages in enumerate(entries):
            conn.execute(
                insert(dataset_entries).values(
                    id=uuid7(),
                    dataset_id=dataset_id,
                    project_id=project_id,
                    split="TRAIN",
                    messages=orjson.dumps(messages).decode(),
                    output=orjson.dumps({"role": "assistant", "content": SYSTEM}).decode(),
                    provenance="api",
                    input_hash=f"{i:064d}",
                    created_at=now + i,
                    updated_at=now + i,
                )
            )
    return dataset_id


@pytest.fixture
def project(engine: Engine) -> str:
    return Database(engine).run_sync(create_project, "p").id


@pytest.fixture
def service(engine: Engine) -> PruningService:
    return PruningService(Database(engine))


def texts(engine: Engine, dataset_id: str, ids: list[str]) -> list[str]:
    """What a fine-tune created from these rules copies."""
    return Database(engine).run_sync(rule_texts, dataset_id, ids)


async def test_pruning_rules_crud_in_creation_order(
    engine: Engine, project: str, service: PruningService
) -> None:
    ds = make_dataset(engine, project, [])
    # Added within the same millisecond, they still keep the order they were added in.
    ids = [(await service.add(project, ds, t)).id for t in ("c", "a", "b")]
    assert [r.id for r in await service.rules(project, ds)] == ids
    updated = await service.update(project, ds, ids[0], "z")
    assert (updated.text_to_match, [r.text_to_match for r in await service.rules(project, ds)]) == (
        "z",
        ["z", "a", "b"],
    )
    await service.remove(project, ds, ids[1])
    assert [r.text_to_match for r in await service.rules(project, ds)] == ["z", "b"]
    with pytest.raises(NotFound):
        await service.remove(project, ds, ids[1])


async def test_pruning_rules_reject_empty_text(engine: Engine, project: str, service: PruningService) -> None:
    ds = make_dataset(engine, project, [])
    with pytest.raises(InvalidRequest):
        await service.add(project, ds, "")


async def test_pruning_rules_are_scoped_to_the_project(
    engine: Engine, project: str, service: PruningService
) -> None:
    other = Database(engine).run_sync(create_project, "other").id
    ds = make_dataset(engine, project, [])
    rule = await service.add(project, ds, "x")
    with pytest.raises(NotFound):
        await service.rules(other, ds)
    with pytest.raises(NotFound):
        await service.add(other, ds, "y")
    with pytest.raises(NotFound):
        await service.remove(other, ds, rule.id)
    with pytest.raises(NotFound):
        await service.report(other, ds)
    with pytest.raises(NotFound):
        await service.rules(project, "no-such-dataset")


async def test_pruning_report_counts_matches_and_tokens_per_rule(
    engine: Engine, project: str, service: PruningService
) -> None:
    ds = make_dataset(
        engine,
        project,
        [
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "one"}],
            [{"role": "system", "content": f"{SYSTEM} Extra."}, {"role": "user", "content": "two"}],
            [{"role": "user", "content": "nothing to prune"}],
        ],
    )
    first = await service.add(project, ds, SYSTEM)
    second = await service.add(project, ds, " Extra.")
    report = report_view(await service.report(project, ds))
    assert (report["entries"], report["entriesChanged"], report["messagesDropped"]) == (3, 2, 2)
    rows = {r["id"]: r for r in report["data"]}
    per_rule = len(SYSTEM) // 4 + (len(SYSTEM) % 4 > 0)
    assert (rows[first.id]["matches"], rows[first.id]["tokensSaved"]) == (2, 2 * per_rule)
    assert (rows[second.id]["matches"], rows[second.id]["tokensSaved"]) == (1, 2)
    assert report["tokensSaved"] == 2 * per_rule + 2


async def test_pruning_report_uses_the_given_tokenizer(engine: Engine, project: str) -> None:
    service = PruningService(Database(engine), count_tokens=lambda s: len(s.split()))
    ds = make_dataset(engine, project, [[{"role": "user", "content": f"{SYSTEM} {SYSTEM}"}]])
    await service.add(project, ds, SYSTEM)
    (row,) = report_view(await service.report(project, ds), service.count_tokens)["data"]
    assert (row["matches"], row["tokensInText"], row["tokensSaved"]) == (2, 10, 20)


async def test_fine_tunes_copy_rule_texts_in_creation_order(
    engine: Engine, project: str, service: PruningService
) -> None:
    ds = make_dataset(engine, project, [])
    a, b, c = [await service.add(project, ds, t) for t in ("a", "b", "c")]
    assert texts(engine, ds, [c.id, a.id]) == ["a", "c"]
    assert texts(engine, ds, []) == []
    other = make_dataset(engine, project, [])
    with pytest.raises(InvalidRequest):
        texts(engine, other, [b.id])


async def test_pruning_rules_go_with_their_dataset(
    engine: Engine, project: str, service: PruningService
) -> None:
    ds = make_dataset(engine, project, [])
    rule = await service.add(project, ds, "x")
    with engine.begin() as conn:
        conn.execute(datasets.delete().where(datasets.c.id == ds))
    with pytest.raises(InvalidRequest):
        texts(engine, ds, [rule.id])
