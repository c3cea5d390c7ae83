"""``/embeddings``: relayed to OpenAI or an external OpenAI-compatible provider, or computed
in-process by a local encoder (``local:<name>``, :mod:`tunepipe.engine.embeddings`).

An upstream's answer goes back as its own bytes; the log keeps the request, the token count,
the cost where the model's price is known, and a summary of the vectors instead of the vectors
(:func:`tunepipe.protocol.embeddings.log_summary`).

The encoder engine, and torch with it, is imported and started on the first local call, as the
generation engine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tunepipe.domain.model_ref import RouteKind, parse_model
from tunepipe.domain.projects import Principal
from tunepipe.errors import InvalidRequest, NotFound, UpstreamUnavailable
from tunepipe.protocol.embeddings import EmbeddingsRequest, embedding_list, log_summary
from tunepipe.services.gateway.endpoints import Answer, forwarded, unsupported, upstream
from tunepipe.services.gateway.limits import RateLimits
from tunepipe.services.gateway.requests import log_unanswered, read_call
from tunepipe.services.gateway.routing import Router
from tunepipe.services.logs.recording import RequestLogger, usage_of
from tunepipe.settings import Settings

if TYPE_CHECKING:
    from tunepipe.engine.embeddings import EmbeddingEngine

ENDPOINT = "embeddings"


class EmbeddingsService:
    def __init__(self, settings: Settings, router: Router, logger: RequestLogger, limits: RateLimits) -> None:
        self._settings = settings
        self._router = router
        self._logger = logger
        self._limits = limits
        self._engine: EmbeddingEngine | None = None

    def engine(self) -> EmbeddingEngine:
        if self._engine is None:
            from tunepipe.engine.embeddings import EmbeddingEngine

            self._engine = EmbeddingEngine(
                device=self._settings.local_device, max_batch=self._settings.local_max_batch
            )
        return self._engine

    async def create(self, principal: Principal, raw: bytes, headers: Mapping[str, str]) -> Answer:
        call, body, request, _ = await read_call(
            self._logger, principal, raw, headers, EmbeddingsRequest, endpoint=ENDPOINT
        )
        ticket = None
        try:
            ticket = await self._limits.admit(principal)
            ref = parse_model(request.model)
            own: bytes | None = None
            if ref.kind is RouteKind.LOCAL:
                answer = await self._local(ref.name, request)
            else:
                route, provider = await upstream(self._router, principal, ref, request.model, ENDPOINT)
                call.price = route.price
                answer, own = await provider.post(ENDPOINT, forwarded(body, route))
                if not isinstance(answer.get("data"), list):
                    raise UpstreamUnavailable(
                        f"{provider.name} returned a body that is not a list of embeddings"
                    )
        except BaseException as exc:  # a cancellation too: the client hung up (logged as 499)
            await self._limits.release(ticket, 0)
            await log_unanswered(self._logger, call, exc)
            raise
        prompt_tokens, _ = usage_of(answer)
        await self._limits.release(ticket, prompt_tokens or 0)
        cost = (
            call.price.cost(prompt_tokens, 0)
            if call.price is not None and prompt_tokens is not None
            else None
        )
        await self._logger.success(call, log_summary(answer), cost=cost)
        return Answer(
            own if own is not None else orjson.dumps(answer), dict(ticket.headers) if ticket else {}
        )

    async def _local(self, name: str, request: EmbeddingsRequest) -> dict[str, Any]:
        from tunepipe.engine.embeddings import EmbeddingInputError, is_embedding_dir

        model = await self._router.local.find(name)
        if model is None:
            raise NotFound(f"The model `local:{name}` does not exist", param="model", code="model_not_found")
        path = Path(model.path)
        if model.kind == "lora" or not await asyncio.to_thread(is_embedding_dir, path):
            raise unsupported(request.model, "a generative (chat) model", ENDPOINT)
        engine = self.engine()
        try:
            loaded = await engine.model(name, path)
        except (ValueError, OSError) as exc:  # a layout it cannot compute, or files gone
            raise InvalidRequest(f"`{request.model}` cannot serve /embeddings: {exc}", param="model") from exc
        if request.dimensions is not None and request.dimensions != loaded.dimensions:
            raise InvalidRequest(
                f"`{request.model}` makes vectors of {loaded.dimensions} dimensions and cannot shorten them: "
                f"leave `dimensions` out or set it to {loaded.dimensions}",
                param="dimensions",
            )
        try:
            ids = await asyncio.to_thread(loaded.token_ids, request.inputs())
        except EmbeddingInputError as exc:
            raise InvalidRequest(str(exc), param="input") from exc
        vectors = await engine.embed(loaded, ids)
        return embedding_list(
            request.model,
            vectors,
            encoding_format=request.encoding_format,
            prompt_tokens=sum(len(seq) for seq in ids),
        )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
