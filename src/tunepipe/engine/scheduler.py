"""The engine thread: admits new sequences into each model's running batch and steps every
batch one token at a time.

All model work happens on this one thread, so the event loop never waits on a forward pass and
no two forward passes race on a model. Requests arriving while a batch runs join it at the next
step (continuous batching). Callers hand over an ``emit`` callback, called on this thread for
every new piece of text.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import torch
from tokenizers.decoders import DecodeStream

from tunepipe.engine.batch import Batch, Row
from tunepipe.engine.loading import LoadedModel
from tunepipe.engine.sampling import RowState
from tunepipe.engine.stops import StopMatcher
from tunepipe.engine.types import Delta, Emit, SequenceSpec

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Submission:
    loaded: LoadedModel
    specs: list[SequenceSpec]
    emit: Emit
    cancelled: threading.Event


class Scheduler:
    def __init__(self, *, max_batch: int = 32) -> None:
        self._max_batch = max_batch
        self._pending: deque[_Submission] = deque()
        self._wake = threading.Condition()
        self._batches: dict[int, Batch] = {}  # id(LoadedModel) -> its running batch
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()

    def submit(self, loaded: LoadedModel, specs: list[SequenceSpec], emit: Emit) -> threading.Event:
        """Queue sequences; returns an event that cancels them when set."""
        cancelled = threading.Event()
        with self._wake:
            self._pending.append(_Submission(loaded, specs, emit, cancelled))
            self._wake.notify()
        return cancelled

    def busy_with(self, loaded: LoadedModel) -> bool:
        """Whether ``loaded`` has sequences running or queued (it must not be evicted)."""
        with self._wake:
            return id(loaded) in self._batches or any(s.loaded is loaded for s in self._pending)

    def close(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    # ------------------------------------------------------------------ the thread

    def _take_pending(self) -> list[_Submission]:
        with self._wake:
            while not self._pending and not self._batches and not self._stopping:
                self._wake.wait()
            taken = list(self._pending)
            self._pending.clear()
            return taken

    def _run(self) -> None:
        with torch.inference_mode():
            while not self._stopping:
                try:
                    self._admit(self._take_pending())
                    for key, batch in list(self._batches.items()):
                        batch.step()
                        if not batch:
                            with self._wake:
                                del self._batches[key]
                except Exception as exc:  # the engine thread must survive a bad request
                    log.exception("engine step failed")
                    self._fail_all(exc)

    def _admit(self, submissions: list[_Submission]) -> None:
        deferred: list[_Submission] = []
        for sub in submissions:
            if sub.cancelled.is_set():
                continue
            batch = self._batches.get(id(sub.loaded)) or Batch(sub.loaded)
            room = self._max_batch - len(batch.rows)
            if room <= 0:
                deferred.append(sub)
                continue
            now, later = sub.specs[:room], sub.specs[room:]
            if later:
                deferred.append(_Submission(sub.loaded, later, sub.emit, sub.cancelled))
            try:
                batch.admit([self._row(sub, spec) for spec in now])
            except Exception as exc:
                log.exception("prefill failed")
                for spec in sub.specs:
                    sub.emit(Delta(index=spec.index, text="", finish_reason="error", error=str(exc)))
                continue
            if batch:
                with self._wake:
                    self._batches[id(sub.loaded)] = batch
        if deferred:
            with self._wake:
                self._pending.extendleft(reversed(deferred))

    @staticmethod
    def _row(sub: _Submission, spec: SequenceSpec) -> Row:
        return Row(
            spec=spec,
            emit=sub.emit,
            cancelled=sub.cancelled,
            state=RowState.new(spec.params, sub.loaded.device),
            stops=StopMatcher(spec.params.stop),
            decoder=DecodeStream(skip_special_tokens=True),
        )

    def _fail_all(self, exc: Exception) -> None:
        """A failed step poisons its batch: finish every row in it with an error."""
        with self._wake:
            batches = list(self._batches.values())
            self._batches.clear()
        for batch in batches:
            for row in batch.rows:
                row.emit(
                    Delta(
                        index=row.spec.index,
                        text="",
                        finish_reason="error",
                        completion_tokens=row.generated,
                        error=str(exc),
                    )
                )
