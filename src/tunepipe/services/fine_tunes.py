"""Fine-tunes as a caller sees them (spec A.4, B.3, B.4, B.11): create one from a dataset
(:mod:`.fine_tune_create`), list, get, cancel and delete it, serve it as ``openpipe:<slug>``, run
its test set (:mod:`.fine_tune_eval`), and hand out its adapter and merged weights.

Serving puts the trained LoRA adapter on the root base model loaded by the local engine (one
base, many adapters, chosen per request), with the model's own copies of its pruning rules
applied to every request first. The resolved provider is kept for ``auth_cache_ttl_s`` so a hot
model costs no database round trip; deleting a model drops it from that cache and takes its
adapter off the loaded base.

The training worker (``services/training_worker.py``) calls :meth:`FineTuneService.evaluate_test_set`
after storing the adapter and before marking the model DEPLOYED.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tunepipe.db import fine_tunes as repo
from tunepipe.db import jobs as job_repo
from tunepipe.db import pruning_rules as rule_repo
from tunepipe.db.fine_tunes import FineTune, TestOutput
from tunepipe.db.records import Principal
from tunepipe.domain.fine_tunes import FineTuneStatus
from tunepipe.errors import InvalidRequest, NotFound
from tunepipe.protocol.models import CreateModelRequest
from tunepipe.providers.base import ChatProvider
from tunepipe.services import fine_tune_eval, fine_tune_files
from tunepipe.services.base_models import BaseModelService
from tunepipe.services.datasets import DatasetService
from tunepipe.services.fine_tune_create import FineTuneCreator, bare_slug
from tunepipe.services.fine_tune_views import context_window, model_view
from tunepipe.services.local_models import LocalModels
from tunepipe.services.pruning import PruningService
from tunepipe.services.ttl_cache import TTLCache
from tunepipe.settings import Settings

log = logging.getLogger(__name__)

DTYPES = ("fp32", "bf16", "fp16")


class FineTuneService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        datasets: DatasetService,
        pruning: PruningService,
        base_models: BaseModelService,
        local: LocalModels,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._datasets = datasets
        self._pruning = pruning
        self._base_models = base_models
        self._local = local
        self._home = settings.home_dir
        self._providers: TTLCache[tuple[str, str], ChatProvider] = TTLCache(settings.auth_cache_ttl_s)
        self._merge_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._creator = FineTuneCreator(settings, engine, pruning=pruning, base_models=base_models)

    async def create(self, principal: Principal, body: CreateModelRequest) -> FineTune:
        """Validate, copy the training rows, queue the job (:mod:`.fine_tune_create`)."""
        return await asyncio.to_thread(self._creator.create_sync, principal, body)

    # ------------------------------------------------------------------ read, cancel, delete

    async def get(self, principal: Principal, slug: str) -> FineTune:
        """The project's model ``slug`` (``openpipe:<slug>`` accepted)."""
        slug = bare_slug(slug)
        ft = None
        if "\x00" not in slug:  # no slug has one, and Postgres refuses NUL in a parameter
            ft = await asyncio.to_thread(repo.get_by_slug, self._engine, principal.project.id, slug)
        if ft is None:
            raise NotFound(f"No model {slug!r} in this project", param="slug", code="model_not_found")
        return ft

    async def find(self, principal: Principal, *, id: str | None, slug: str | None) -> FineTune:
        """The project's model by id or, without one, by slug (the deprecated routes)."""
        if id:
            ft = None
            if "\x00" not in id:
                ft = await asyncio.to_thread(repo.get_by_id, self._engine, id, principal.project.id)
            if ft is None:
                raise NotFound(f"No fine-tune with id {id!r} in this project", param="id")
            return ft
        if slug:
            return await self.get(principal, slug)
        raise InvalidRequest("Pass `id` or `slug`", param="id")

    async def cancel(self, principal: Principal, slug: str) -> FineTune:
        """Stop a model that is not trained yet: at once when it waits, by its worker when it
        trains (the worker marks it ERROR "cancelled")."""
        ft = await self.get(principal, slug)
        if ft.status not in (FineTuneStatus.PENDING, FineTuneStatus.QUEUED, FineTuneStatus.TRAINING):
            raise InvalidRequest(
                f"The model {ft.slug!r} is not training (status {ft.status}); there is nothing to cancel",
                param="slug",
                code="not_cancellable",
            )
        return await asyncio.to_thread(self._cancel_sync, ft)

    def _cancel_sync(self, ft: FineTune) -> FineTune:
        self._cancel_jobs(ft.id)
        if ft.status in (FineTuneStatus.PENDING, FineTuneStatus.QUEUED):
            repo.update_fine_tune(self._engine, ft.id, status=FineTuneStatus.ERROR, error_message="cancelled")
        return repo.get_by_id(self._engine, ft.id) or ft

    def _cancel_jobs(self, fine_tune_id: str) -> None:
        for job in job_repo.for_subject(self._engine, fine_tune_id):
            if job.status in job_repo.UNFINISHED:
                job_repo.request_cancel(self._engine, job.id)

    async def delete(self, principal: Principal, slug: str) -> FineTune:
        """Delete the model, its rows and files; a running training is asked to stop."""
        ft = await self.get(principal, slug)
        await asyncio.to_thread(self._delete_sync, ft)
        self._providers.invalidate((ft.project_id, ft.slug))
        await self._unload(ft)
        return ft

    def _delete_sync(self, ft: FineTune) -> None:
        self._cancel_jobs(ft.id)
        rule_repo.delete_for_fine_tune(self._engine, ft.id)
        repo.delete_fine_tune(self._engine, ft.id)
        fine_tune_files.remove_files(self._home, ft.id)

    async def _unload(self, ft: FineTune) -> None:
        """Take the adapter off its base model in this process's engine, if it is there."""
        if not self._local.started:
            return
        base = await self._local.find(ft.root_model)
        if base is None:
            return
        pool = self._local.engine().pool
        if base.name not in pool.loaded:
            return
        from tunepipe.engine.loading import detach_adapter

        path = Path(base.path)
        loaded = await pool.get(base.name, lambda: path)
        name = adapter_name(ft)
        if name not in loaded.adapters:
            return
        await asyncio.to_thread(detach_adapter, loaded, name)

    async def test_outputs(self, principal: Principal, slug: str) -> tuple[FineTune, list[TestOutput]]:
        ft = await self.get(principal, slug)
        return ft, await asyncio.to_thread(repo.list_test_outputs, self._engine, ft.id)

    # ------------------------------------------------------------------ views

    async def view(self, principal: Principal, ft: FineTune) -> dict[str, Any]:
        return (await self.views(principal, [ft]))[0]

    async def views(self, principal: Principal, fts: list[FineTune]) -> list[dict[str, Any]]:
        """Model objects; the context window comes from each root base model's config.json."""

        def contexts() -> dict[str, int]:
            roots = {ft.root_model for ft in fts}
            bases = [m for m in self._base_models.list_sync() if m.name in roots]
            return {m.name: context_window(m.path) for m in bases}

        found = await asyncio.to_thread(contexts) if fts else {}
        owner = principal.project.name
        return [model_view(ft, owner=owner, context=found.get(ft.root_model, 0)) for ft in fts]

    # ------------------------------------------------------------------ serving

    async def provider(self, principal: Principal, slug: str) -> ChatProvider:
        """The provider serving the project's deployed model ``slug``."""
        key = (principal.project.id, bare_slug(slug))
        return await self._providers.get(key, lambda: self._resolve(principal, key[1]))

    async def _resolve(self, principal: Principal, slug: str) -> ChatProvider:
        ft = None
        if "\x00" not in slug:
            ft = await asyncio.to_thread(repo.get_by_slug, self._engine, principal.project.id, slug)
        if ft is None:
            raise NotFound(
                f"The model `openpipe:{slug}` does not exist", param="model", code="model_not_found"
            )
        if ft.status != FineTuneStatus.DEPLOYED:
            raise InvalidRequest(
                f"The model `openpipe:{slug}` is not deployed (status {ft.status})",
                param="model",
                code="model_not_deployed",
            )
        return await self.provider_for(ft)

    async def provider_for(self, ft: FineTune) -> ChatProvider:
        """A provider for ``ft`` whatever its status (the worker evaluates before DEPLOYED)."""
        base = await self._local.find(ft.root_model)
        if base is None:
            raise NotFound(
                f"The base model {ft.root_model!r} of `openpipe:{ft.slug}` is no longer registered",
                param="model",
            )
        adapter = await asyncio.to_thread(
            fine_tune_files.materialise_adapter, self._engine, self._home, ft.id
        )
        if adapter is None:
            raise InvalidRequest(
                f"The model `openpipe:{ft.slug}` has no trained adapter",
                param="model",
                code="model_not_deployed",
            )
        rules = await asyncio.to_thread(rule_repo.texts_for_fine_tune, self._engine, ft.id)
        from tunepipe.providers.local import LocalProvider  # imports torch: only once serving

        return LocalProvider(
            self._local.engine(),
            model_name=base.name,
            path=Path(base.path),
            adapter=(adapter_name(ft), adapter),
            display_name=f"openpipe:{ft.slug}",
            default_max_tokens=self._settings.local_default_max_tokens,
            default_temperature=ft.default_temperature,
            prune_rules=tuple(rules),
        )

    async def evaluate_test_set(self, ft: FineTune) -> dict[str, Any]:
        """Generate and judge the model's outputs for its TEST rows; store them, return metrics."""
        rows = await asyncio.to_thread(lambda: list(repo.iter_entries(self._engine, ft.id, "TEST")))
        if not rows:
            return fine_tune_eval.summary([])
        provider = await self.provider_for(ft)
        outputs = await fine_tune_eval.run_rows(provider, rows)
        await asyncio.to_thread(repo.save_test_outputs, self._engine, ft.id, outputs)
        return fine_tune_eval.summary(outputs)

    # ------------------------------------------------------------------ files

    async def adapter_archive(self, principal: Principal, slug: str) -> tuple[FineTune, bytes]:
        """The adapter directory as a gzipped tar (what vLLM's ``--lora-modules`` loads once
        extracted: ``adapter_config.json`` names the base model)."""
        ft = await self.get(principal, slug)
        data = await asyncio.to_thread(repo.load_artifact, self._engine, ft.id, fine_tune_files.ADAPTER)
        if data is None:
            raise NotFound(f"The model {ft.slug!r} has no trained adapter (status {ft.status})", param="slug")
        return ft, data

    async def adapter_directory(self, principal: Principal, slug: str) -> Path:
        return await self._adapter_directory(await self.get(principal, slug))

    async def _adapter_directory(self, ft: FineTune) -> Path:
        path = await asyncio.to_thread(fine_tune_files.materialise_adapter, self._engine, self._home, ft.id)
        if path is None:
            raise NotFound(f"The model {ft.slug!r} has no trained adapter (status {ft.status})", param="slug")
        return path

    async def merged_directory(self, principal: Principal, slug: str, dtype: str) -> Path:
        """The base model with the adapter merged in, saved in ``dtype`` (built once, kept under
        ``TUNEPIPE_HOME/fine_tunes/<id>/merged-<dtype>``)."""
        if dtype not in DTYPES:
            raise InvalidRequest(f"dtype must be one of {', '.join(DTYPES)}", param="dtype")
        ft = await self.get(principal, slug)
        adapter = await self._adapter_directory(ft)
        base = await self._local.find(ft.root_model)
        if base is None:
            raise NotFound(f"The base model {ft.root_model!r} is no longer registered", param="slug")
        target = fine_tune_files.fine_tune_dir(self._home, ft.id) / f"merged-{dtype}"
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
                await asyncio.to_thread(_tar_gz, target, archive)
        return archive

    # ------------------------------------------------------------------ list (last: `list` shadows)

    async def list(self, principal: Principal) -> list[FineTune]:
        """The project's models, newest first."""
        return await asyncio.to_thread(repo.list_for_project, self._engine, principal.project.id)


def adapter_name(ft: FineTune) -> str:
    """The adapter's name on its base model in the engine."""
    return f"ft:{ft.id}"


def _merge(base: Path, adapter: Path, target: Path, dtype: str) -> None:
    from tunepipe.training.merge import merge_adapter  # torch: only when asked

    merge_adapter(base, adapter, target, dtype)  # written aside and renamed into place


def _tar_gz(directory: Path, archive: Path) -> None:
    partial = archive.with_name(f".{archive.name}.partial")
    with partial.open("wb") as out:
        fine_tune_files.write_tar_gz(directory, out)
    partial.rename(archive)
