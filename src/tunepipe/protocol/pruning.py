"""Pruning rules on the wire (``/datasets/{datasetId}/pruning-rules``, spec B.11).

OpenPipe only had these in its UI; the shapes follow its ``PruningRule`` (``textToMatch``,
``tokensInText``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.pruning import PruningReport, PruningRule, estimate_tokens

TokenCounter = Callable[[str], int]


class PruningRuleBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    text_to_match: str = Field(alias="textToMatch")


def rule_view(rule: PruningRule, count_tokens: TokenCounter = estimate_tokens) -> dict[str, Any]:
    return {
        "id": rule.id,
        "object": "pruning_rule",
        "datasetId": rule.dataset_id,
        "textToMatch": rule.text_to_match,
        "tokensInText": count_tokens(rule.text_to_match),
        "createdAt": rule.created_at,
    }


def report_view(report: PruningReport, count_tokens: TokenCounter = estimate_tokens) -> dict[str, Any]:
    data = []
    for saved in report.rules:
        view = rule_view(saved.rule, count_tokens)
        data.append({**view, "matches": saved.matches, "tokensSaved": saved.matches * view["tokensInText"]})
    return {
        "object": "pruning_report",
        "datasetId": report.dataset_id,
        "entries": report.entries,
        "entriesChanged": report.entries_changed,
        "messagesDropped": report.messages_dropped,
        "tokensSaved": sum(d["tokensSaved"] for d in data),
        "data": data,
    }
