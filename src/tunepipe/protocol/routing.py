"""Routing settings on the wire: a project's default fallback chain and retries for a model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.routing import MAX_FALLBACKS, MAX_RETRIES, FallbackChain
from tunepipe.protocol.types import Text


class FallbackChainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fallbacks: list[Text] = Field(default_factory=list, max_length=MAX_FALLBACKS)
    retries: int | None = Field(None, ge=0, le=MAX_RETRIES)


def chain_view(chain: FallbackChain) -> dict[str, object]:
    return {"model": chain.model, "fallbacks": list(chain.fallbacks), "retries": chain.retries}
