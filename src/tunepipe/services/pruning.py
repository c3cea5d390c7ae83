"""Pruning rules of a dataset (spec B.11): CRUD scoped by project, a savings report over the
dataset's entries, and the rule texts a fine-tune copies (:meth:`PruningService.rules_for_sync`).

The rules only ever touch an entry's input messages; the output (the training target) is never
pruned. The algorithm itself is :func:`tunepipe.domain.pruning.prune`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine

from tunepipe.db import pruning_rules as repo
from tunepipe.db.pruning_rules import PruningRule
from tunepipe.domain.pruning import estimate_tokens, prune
from tunepipe.errors import InvalidRequest, NotFound

MAX_RULE_CHARS = 100_000


def rule_view(rule: PruningRule, count_tokens: Callable[[str], int] = estimate_tokens) -> dict[str, Any]:
    return {
        "id": rule.id,
        "object": "pruning_rule",
        "datasetId": rule.dataset_id,
        "textToMatch": rule.text_to_match,
        "tokensInText": count_tokens(rule.text_to_match),
        "createdAt": rule.created_at,
    }


def _check_text(text: str) -> str:
    if not text:
        raise InvalidRequest("textToMatch may not be empty", param="textToMatch")
    if len(text) > MAX_RULE_CHARS:
        raise InvalidRequest(f"textToMatch is longer than {MAX_RULE_CHARS} characters", param="textToMatch")
    return text


class PruningService:
    def __init__(self, engine: Engine, count_tokens: Callable[[str], int] = estimate_tokens) -> None:
        self._engine = engine
        self._count_tokens = count_tokens

    def view(self, rule: PruningRule) -> dict[str, Any]:
        return rule_view(rule, self._count_tokens)

    def _dataset(self, project_id: str, dataset_id: str) -> None:
        if not repo.dataset_exists(self._engine, project_id, dataset_id):
            raise NotFound(f"No dataset with id {dataset_id!r}")

    def list_sync(self, project_id: str, dataset_id: str) -> list[PruningRule]:
        self._dataset(project_id, dataset_id)
        return repo.list_rules(self._engine, project_id, dataset_id)

    def add_sync(self, project_id: str, dataset_id: str, text: str) -> PruningRule:
        _check_text(text)
        self._dataset(project_id, dataset_id)
        return repo.add_rule(self._engine, project_id, dataset_id, text)

    def update_sync(self, project_id: str, dataset_id: str, rule_id: str, text: str) -> PruningRule:
        _check_text(text)
        self._dataset(project_id, dataset_id)
        if not repo.update_rule(self._engine, project_id, dataset_id, rule_id, text):
            raise NotFound(f"No pruning rule with id {rule_id!r} in this dataset")
        rule = repo.get_rule(self._engine, project_id, dataset_id, rule_id)
        if rule is None:  # deleted between the two statements
            raise NotFound(f"No pruning rule with id {rule_id!r} in this dataset")
        return rule

    def remove_sync(self, project_id: str, dataset_id: str, rule_id: str) -> None:
        self._dataset(project_id, dataset_id)
        if not repo.delete_rule(self._engine, project_id, dataset_id, rule_id):
            raise NotFound(f"No pruning rule with id {rule_id!r} in this dataset")

    def report_sync(self, project_id: str, dataset_id: str) -> dict[str, Any]:
        """Apply the rules to every entry's input; per rule, the matches and tokens saved.

        Entries are streamed, so memory stays flat however large the dataset.
        """
        rules = self.list_sync(project_id, dataset_id)
        texts = [r.text_to_match for r in rules]
        matches = [0] * len(rules)
        entries = entries_changed = dropped = 0
        for raw in repo.iter_entry_messages(self._engine, project_id, dataset_id):
            entries += 1
            if not texts:
                continue
            messages = orjson.loads(raw)
            if not isinstance(messages, list):
                continue
            result = prune(messages, texts, count_tokens=self._count_tokens)
            dropped += result.dropped
            hit = False
            for i, effect in enumerate(result.rules):
                matches[i] += effect.matches
                hit = hit or effect.matches > 0
            entries_changed += hit
        data = []
        for rule, count in zip(rules, matches, strict=True):
            view = self.view(rule)
            data.append({**view, "matches": count, "tokensSaved": count * view["tokensInText"]})
        return {
            "object": "pruning_report",
            "datasetId": dataset_id,
            "entries": entries,
            "entriesChanged": entries_changed,
            "messagesDropped": dropped,
            "tokensSaved": sum(d["tokensSaved"] for d in data),
            "data": data,
        }

    def rules_for_sync(self, dataset_id: str, ids: Sequence[str]) -> list[str]:
        """The texts of the dataset's rules ``ids``, oldest first: what a fine-tune copies.

        Raises:
            InvalidRequest: an id is not a rule of this dataset.
        """
        found = repo.rules_with_ids(self._engine, dataset_id, ids)
        missing = set(ids) - {r.id for r in found}
        if missing:
            raise InvalidRequest(
                f"Not pruning rules of dataset {dataset_id!r}: {', '.join(sorted(missing))}",
                param="pruningRuleIds",
            )
        return [r.text_to_match for r in found]

    async def list_rules(self, project_id: str, dataset_id: str) -> list[PruningRule]:
        return await asyncio.to_thread(self.list_sync, project_id, dataset_id)

    async def add(self, project_id: str, dataset_id: str, text: str) -> PruningRule:
        return await asyncio.to_thread(self.add_sync, project_id, dataset_id, text)

    async def update(self, project_id: str, dataset_id: str, rule_id: str, text: str) -> PruningRule:
        return await asyncio.to_thread(self.update_sync, project_id, dataset_id, rule_id, text)

    async def remove(self, project_id: str, dataset_id: str, rule_id: str) -> None:
        await asyncio.to_thread(self.remove_sync, project_id, dataset_id, rule_id)

    async def report(self, project_id: str, dataset_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.report_sync, project_id, dataset_id)

    async def rules_for(self, dataset_id: str, ids: Sequence[str]) -> list[str]:
        return await asyncio.to_thread(self.rules_for_sync, dataset_id, ids)
