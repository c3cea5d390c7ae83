"""Model outputs on dataset entries: each generated once and shared by every eval and alignment
set of the project.

A model's answer to an entry is looked up before it is generated: in the shared store
(:mod:`tunepipe.db.model_outputs`, keyed by the entry's input hash, so an edited input is
answered anew), then, for a fine-tune (``openpipe:<slug>``), in the test-set answers it gave
after training, when the entry has not changed since the model was created. Only what is missing
is generated, through the router, greedily (:func:`tunepipe.domain.answers.answer_request`); a
generated answer is stored at once, so a job that dies loses none it paid for. ``dataset`` is
the entry's own output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from tunepipe.db import fine_tunes as fine_tune_repo
from tunepipe.db import model_outputs as repo
from tunepipe.db.database import Database
from tunepipe.db.model_outputs import ModelOutput
from tunepipe.domain.answers import answer_request
from tunepipe.domain.dataset_entries import EntryInvalid
from tunepipe.domain.datasets import StoredEntry
from tunepipe.domain.evals import DATASET_MODEL
from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import UpstreamUnavailable
from tunepipe.services.datasets.imports import first_choice
from tunepipe.services.gateway.routing import Router
from tunepipe.services.logs.recording import cost_of, usage_of


@dataclass(frozen=True, slots=True)
class Answered:
    """A model's output for an entry, and whether this call generated it (and paid for it)."""

    output: ModelOutput
    generated: bool


def dataset_output(entry: StoredEntry) -> ModelOutput:
    return ModelOutput(entry.id, DATASET_MODEL, entry.input_hash, entry.data.output, None, None, None, 0.0)


def _fine_tune_answers(
    conn: Connection, project_id: str, model: str, entries: Sequence[StoredEntry]
) -> list[ModelOutput]:
    """A fine-tune's stored test-set answers for ``entries`` unchanged since it was created."""
    ref = parse_model(model)
    if ref.kind is not RouteKind.FINE_TUNE:
        return []
    ft = fine_tune_repo.get_by_slug(conn, project_id, ref.name)
    if ft is None:
        return []
    fresh = {e.id: e for e in entries if e.updated_at <= ft.created_at}
    return [
        ModelOutput(
            t.entry_id,
            model,
            fresh[t.entry_id].input_hash,
            t.output,
            t.finish_reason,
            t.prompt_tokens,
            t.completion_tokens,
            0.0,
        )
        for t in fine_tune_repo.list_test_outputs(conn, ft.id)
        if t.entry_id in fresh and t.output is not None and t.error_message is None
    ]


class EntryOutputs:
    def __init__(self, db: Database, router: Router) -> None:
        self._db = db
        self._router = router

    async def stored(
        self, project_id: str, model: str, entries: Sequence[StoredEntry]
    ) -> dict[str, ModelOutput]:
        """The outputs of ``model`` that already exist for ``entries``, by entry id."""
        if model == DATASET_MODEL:
            return {e.id: dataset_output(e) for e in entries}

        def load(conn: Connection) -> dict[str, ModelOutput]:
            found = repo.find(conn, project_id, model, [(e.id, e.input_hash) for e in entries])
            missing = [e for e in entries if e.id not in found]
            reused = _fine_tune_answers(conn, project_id, model, missing) if missing else []
            repo.save(conn, project_id, reused)
            found.update((o.entry_id, o) for o in reused)
            return found

        return await self._db.run(load)

    async def generate(self, principal: Principal, model: str, entry: StoredEntry) -> ModelOutput:
        """Ask ``model`` to answer ``entry`` and store the answer. Raises
        :class:`~tunepipe.errors.TunepipeError` when the call fails."""
        route = await self._router.resolve(principal, parse_model(model))
        row = {
            "messages": entry.data.messages,
            "output": entry.data.output,
            "tools": entry.data.tools,
            "tool_choice": entry.data.tool_choice,
            "response_format": entry.data.response_format,
        }
        body = {**answer_request(row), "model": route.ref.name}
        answered = await route.provider.complete(body)
        completion = answered.data
        prompt, output_tokens = usage_of(completion)
        try:
            message = first_choice(completion)
        except EntryInvalid as exc:
            raise UpstreamUnavailable(f"{model} answered with no choice") from exc
        answer = ModelOutput(
            entry_id=entry.id,
            model=model,
            input_hash=entry.input_hash,
            output=message,
            finish_reason=completion["choices"][0].get("finish_reason"),
            prompt_tokens=prompt,
            completion_tokens=output_tokens,
            cost=answered.cost if answered.cost is not None else cost_of(route.price, completion),
        )
        await self._db.run(repo.save, principal.project.id, [answer])
        return answer

    async def answer(self, principal: Principal, model: str, entry: StoredEntry) -> Answered:
        """One entry's output: stored, or generated now."""
        found = await self.stored(principal.project.id, model, [entry])
        if entry.id in found:
            return Answered(found[entry.id], generated=False)
        return Answered(await self.generate(principal, model, entry), generated=True)
