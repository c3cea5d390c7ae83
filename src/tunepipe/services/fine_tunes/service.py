"""Fine-tunes as a caller sees them (spec A.4, B.3, B.4, B.11): create one from a dataset
(:mod:`.create`), list, get, cancel and delete it, and hand out its adapter and merged weights.

Training is the ``train`` job's (:mod:`.training`); serving is :mod:`.serving`'s. A model's status
is never written here: it follows its job (a cancel cancels the job, in the same transaction).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from tunepipe.db import base_models, changes
from tunepipe.db import fine_tunes as repo
from tunepipe.db import jobs as job_repo
from tunepipe.db import pruning_rules as rule_repo
from tunepipe.db.database import Database
from tunepipe.domain.fine_tunes import UNFINISHED, FineTune, TestOutput, progress_view
from tunepipe.domain.jobs import JobKind
from tunepipe.domain.projects import Principal
from tunepipe.engine.sources import context_window
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.models import CreateModelRequest
from tunepipe.services.changes import ChangeFeed
from tunepipe.services.fine_tunes import files
from tunepipe.services.fine_tunes.create import FineTuneCreator
from tunepipe.services.fine_tunes.serving import SCOPE, FineTuneServing, bare_slug
from tunepipe.services.jobs import queue
from tunepipe.services.local.serving import LocalModels
from tunepipe.settings import Settings
from tunepipe.training.config import LOG_FILE

DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True, slots=True)
class FineTuneDetails:
    """A fine-tune with what its Model object shows besides its row."""

    fine_tune: FineTune
    progress: dict[str, Any]  # its train job's
    context: int  # its root base model's context window (0: unknown)


def fine_tune_in(conn: Connection, principal: Principal, slug: str) -> FineTune:
    ft = repo.get_by_slug(conn, principal.project.id, bare_slug(slug))
    if ft is None:
        raise NotFound(f"No model {bare_slug(slug)!r} in this project", param="slug", code="model_not_found")
    return ft


class FineTuneService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        local: LocalModels,
        serving: FineTuneServing,
        feed: ChangeFeed | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._local = local
        self._serving = serving
        self._feed = feed
        self._home = settings.home_dir
        self._merge_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._creator = FineTuneCreator(settings)

    async def create(self, principal: Principal, body: CreateModelRequest) -> FineTune:
        """Validate, copy the training rows, queue the job: one transaction (:mod:`.create`)."""
        ft = await self._db.run(self._creator.create, principal, body)
        if self._feed is not None:
            self._feed.changed(queue.SCOPE, JobKind.TRAIN)
        return ft

    # ------------------------------------------------------------------ read

    async def get(self, principal: Principal, slug: str) -> FineTune:
        """The project's model ``slug`` (``openpipe:<slug>`` accepted)."""
        return await self._db.run(fine_tune_in, principal, slug)

    async def find(self, principal: Principal, *, id: str | None, slug: str | None) -> FineTune:
        """The project's model by id or, without one, by slug (the deprecated routes)."""
        if id:
            ft = await self._db.run(repo.get_by_id, id, principal.project.id)
            if ft is None:
                raise NotFound(f"No fine-tune with id {id!r} in this project", param="id")
            return ft
        if slug:
            return await self.get(principal, slug)
        raise InvalidRequest("Pass `id` or `slug`", param="id")

    async def all(self, principal: Principal) -> list[FineTune]:
        """The project's models, newest first."""
        return await self._db.run(repo.list_for_project, principal.project.id)

    async def details(self, fts: list[FineTune]) -> list[FineTuneDetails]:
        """Each model with its training progress and its base model's context window."""

        def load(conn: Connection) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
            jobs = job_repo.latest_for(conn, [ft.id for ft in fts], JobKind.TRAIN)
            roots = {ft.root_model for ft in fts}
            contexts = {m.name: context_window(m.path) for m in base_models.list_all(conn) if m.name in roots}
            return {ft_id: progress_view(job) for ft_id, job in jobs.items()}, contexts

        progress, contexts = await self._db.run(load) if fts else ({}, {})
        return [FineTuneDetails(ft, progress.get(ft.id, {}), contexts.get(ft.root_model, 0)) for ft in fts]

    async def detail(self, ft: FineTune) -> FineTuneDetails:
        return (await self.details([ft]))[0]

    async def test_outputs(self, principal: Principal, slug: str) -> tuple[FineTune, list[TestOutput]]:
        def load(conn: Connection) -> tuple[FineTune, list[TestOutput]]:
            ft = fine_tune_in(conn, principal, slug)
            return ft, repo.list_test_outputs(conn, ft.id)

        return await self._db.run(load)

    async def test_expected(self, principal: Principal, slug: str) -> dict[str, dict[str, Any]]:
        """The dataset's output of each TEST row the model was made with, by entry id (what its
        test-set outputs are compared with)."""

        def load(conn: Connection) -> dict[str, dict[str, Any]]:
            ft = fine_tune_in(conn, principal, slug)
            return {
                entry_id: row.get("output") or {} for entry_id, row in repo.iter_entries(conn, ft.id, "TEST")
            }

        return await self._db.run(load)

    async def loss_history(self, principal: Principal, slug: str) -> list[dict[str, Any]]:
        """The training's progress events in order (``step``, ``loss``, ``eval_loss``, …), as the
        training process logged them: from its job directory while it trains, from the stored
        adapter (which keeps the log) once it is done; empty before the first step."""

        def load(conn: Connection) -> tuple[Path | None, bytes | None]:
            ft = fine_tune_in(conn, principal, slug)
            job = job_repo.latest_for(conn, [ft.id], JobKind.TRAIN).get(ft.id)
            log = self._home / "jobs" / f"{job.id}-{job.attempts}" / LOG_FILE if job is not None else None
            if log is not None and log.is_file():
                return log, None
            kept = files.adapter_dir(self._home, ft.id) / LOG_FILE  # unpacked here to serve it
            if kept.is_file():
                return kept, None
            return None, repo.load_artifact(conn, ft.id, files.ADAPTER)

        log, archive = await self._db.run(load)
        return await asyncio.to_thread(files.progress_events, log, archive)

    # ------------------------------------------------------------------ cancel, delete

    async def cancel(self, principal: Principal, slug: str) -> FineTune:
        """Stop a model that is not trained yet: at once when it waits, by its worker when it
        trains (then it becomes ERROR "cancelled" once the training process stopped)."""

        def cancel(conn: Connection) -> FineTune:
            ft = fine_tune_in(conn, principal, slug)
            if ft.status not in UNFINISHED:
                raise InvalidRequest(
                    f"The model {ft.slug!r} is not training (status {ft.status}); there is nothing to cancel",
                    param="slug",
                    code="not_cancellable",
                )
            queue.cancel_for_subject(conn, ft.id)
            return repo.get_by_id(conn, ft.id) or ft

        return await self._db.run(cancel)

    async def delete(self, principal: Principal, slug: str) -> FineTune:
        """Delete the model, its rows and files; a running training is asked to stop."""

        def delete(conn: Connection) -> FineTune:
            ft = fine_tune_in(conn, principal, slug)
            queue.cancel_for_subject(conn, ft.id)
            rule_repo.delete_for_fine_tune(conn, ft.id)
            repo.delete_fine_tune(conn, ft.id)
            changes.record(conn, SCOPE, f"{ft.project_id}/{ft.slug}")
            return ft

        ft = await self._db.run(delete)
        await asyncio.to_thread(files.remove_files, self._home, ft.id)
        if self._feed is not None:
            self._feed.changed(SCOPE, f"{ft.project_id}/{ft.slug}")
        await self._serving.take_down(ft)
        return ft

    # ------------------------------------------------------------------ files

    async def adapter_archive(self, principal: Principal, slug: str) -> tuple[FineTune, bytes]:
        """The adapter directory as a gzipped tar (what vLLM's ``--lora-modules`` loads once
        extracted: ``adapter_config.json`` names the base model)."""

        def load(conn: Connection) -> tuple[FineTune, bytes | None]:
            ft = fine_tune_in(conn, principal, slug)
            return ft, repo.load_artifact(conn, ft.id, files.ADAPTER)

        ft, data = await self._db.run(load)
        if data is None:
            raise NotFound(f"The model {ft.slug!r} has no trained adapter (status {ft.status})", param="slug")
        return ft, data

    async def adapter_directory(self, principal: Principal, slug: str) -> Path:
        return (await self._adapter(principal, slug))[1]

    async def _adapter(self, principal: Principal, slug: str) -> tuple[FineTune, Path]:
        def load(conn: Connection) -> tuple[FineTune, Path | None]:
            ft = fine_tune_in(conn, principal, slug)
            return ft, files.materialise_adapter(conn, self._home, ft.id)

        ft, path = await self._db.run(load)
        if path is None:
            raise NotFound(f"The model {ft.slug!r} has no trained adapter (status {ft.status})", param="slug")
        return ft, path

    async def merged_directory(self, principal: Principal, slug: str, dtype: str) -> Path:
        """The base model with the adapter merged in, saved in ``dtype`` (built once, kept under
        ``TUNEPIPE_HOME/fine_tunes/<id>/merged-<dtype>``)."""
        if dtype not in DTYPES:
            raise InvalidRequest(f"dtype must be one of {', '.join(DTYPES)}", param="dtype")
        ft, adapter = await self._adapter(principal, slug)
        base = await self._local.find(ft.root_model)
        if base is None:
            raise NotFound(f"The base model {ft.root_model!r} is no longer registered", param="slug")
        target = files.fine_tune_dir(self._home, ft.id) / f"merged-{dtype}"
        async with self._merge_locks.setdefault((ft.id, dtype), asyncio.Lock()):
            if not target.is_dir():
                await asyncio.to_thread(_merge, Path(base.path), adapter, target, dtype)
        return target

    async def merged_archive(self, principal: Principal, slug: str, dtype: str) -> Path:
        """:meth:`merged_directory` as a gzipped tar file (built once, next to it)."""
        target = await self.merged_directory(principal, slug, dtype)
        archive = target.with_name(f"{target.name}.tar.gz")
        async with self._merge_locks.setdefault((str(archive), dtype), asyncio.Lock()):
            if not archive.is_file():
                await asyncio.to_thread(files.tar_gz_file, target, archive)
        return archive


def _merge(base: Path, adapter: Path, target: Path, dtype: str) -> None:
    from tunepipe.training.merge import merge_adapter  # torch: only when asked

    merge_adapter(base, adapter, target, dtype)  # written aside and renamed into place
