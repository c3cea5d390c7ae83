"""Pruning rules of a dataset (spec B.11): CRUD scoped by project, a savings report over the
dataset's entries.

The rules only ever touch an entry's input messages; the output (the training target) is never
pruned. The algorithm itself is :func:`tunepipe.domain.pruning.prune`; the copies a fine-tune
keeps are made by :mod:`tunepipe.services.fine_tunes.create`.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from sqlalchemy import Connection

from tunepipe.db import pruning_rules as repo
from tunepipe.db.database import Database
from tunepipe.domain.pruning import PruningReport, PruningRule, RuleSavings, estimate_tokens, prune
from tunepipe.errors import InvalidRequest, NotFound

MAX_RULE_CHARS = 100_000


def _check_text(text: str) -> str:
    if not text:
        raise InvalidRequest("textToMatch may not be empty", param="textToMatch")
    if len(text) > MAX_RULE_CHARS:
        raise InvalidRequest(f"textToMatch is longer than {MAX_RULE_CHARS} characters", param="textToMatch")
    return text


def _dataset(conn: Connection, project_id: str, dataset_id: str) -> None:
    if not repo.dataset_exists(conn, project_id, dataset_id):
        raise NotFound(f"No dataset with id {dataset_id!r}")


class PruningService:
    def __init__(self, db: Database, count_tokens: Callable[[str], int] = estimate_tokens) -> None:
        self._db = db
        self.count_tokens = count_tokens

    async def rules(self, project_id: str, dataset_id: str) -> list[PruningRule]:
        def rules(conn: Connection) -> list[PruningRule]:
            _dataset(conn, project_id, dataset_id)
            return repo.list_rules(conn, project_id, dataset_id)

        return await self._db.run(rules)

    async def add(self, project_id: str, dataset_id: str, text: str) -> PruningRule:
        _check_text(text)

        def add(conn: Connection) -> PruningRule:
            _dataset(conn, project_id, dataset_id)
            return repo.add_rule(conn, project_id, dataset_id, text)

        return await self._db.run(add)

    async def update(self, project_id: str, dataset_id: str, rule_id: str, text: str) -> PruningRule:
        _check_text(text)

        def update(conn: Connection) -> PruningRule:
            _dataset(conn, project_id, dataset_id)
            rule = None
            if repo.update_rule(conn, project_id, dataset_id, rule_id, text):
                rule = repo.get_rule(conn, project_id, dataset_id, rule_id)
            if rule is None:
                raise NotFound(f"No pruning rule with id {rule_id!r} in this dataset")
            return rule

        return await self._db.run(update)

    async def remove(self, project_id: str, dataset_id: str, rule_id: str) -> None:
        def remove(conn: Connection) -> None:
            _dataset(conn, project_id, dataset_id)
            if not repo.delete_rule(conn, project_id, dataset_id, rule_id):
                raise NotFound(f"No pruning rule with id {rule_id!r} in this dataset")

        await self._db.run(remove)

    async def report(self, project_id: str, dataset_id: str) -> PruningReport:
        """Apply the rules to every entry's input; per rule, the matches (entries are streamed,
        so memory stays flat however large the dataset)."""

        def report(conn: Connection) -> PruningReport:
            _dataset(conn, project_id, dataset_id)
            rules = repo.list_rules(conn, project_id, dataset_id)
            texts = [r.text_to_match for r in rules]
            matches = [0] * len(rules)
            entries = entries_changed = dropped = 0
            for raw in repo.iter_entry_messages(conn, project_id, dataset_id):
                entries += 1
                if not texts:
                    continue
                messages = orjson.loads(raw)
                if not isinstance(messages, list):
                    continue
                result = prune(messages, texts, count_tokens=self.count_tokens)
                dropped += result.dropped
                hit = False
                for i, effect in enumerate(result.rules):
                    matches[i] += effect.matches
                    hit = hit or effect.matches > 0
                entries_changed += hit
            return PruningReport(
                dataset_id=dataset_id,
                entries=entries,
                entries_changed=entries_changed,
                messages_dropped=dropped,
                rules=[RuleSavings(rule, count) for rule, count in zip(rules, matches, strict=True)],
            )

        return await self._db.run(report)
