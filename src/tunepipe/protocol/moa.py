"""Mixture-of-agents configurations on the wire (tunepipe's: OpenPipe offered only its built-in
MoA models). Bodies carry types; the rules (counts, ranges, model names) are the domain's
(:func:`tunepipe.domain.moa.make_config`), shared with the CLI."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.moa import MAX_PROMPT_CHARS, MoaConfig, ProjectMoa, make_config
from tunepipe.protocol.logs import iso
from tunepipe.protocol.types import Text

Model = Annotated[Text, Field(max_length=300)]


class MoaConfigBody(BaseModel):
    """``PUT /moa-configs/{slug}``: the whole configuration (what is left out takes its default)."""

    model_config = ConfigDict(extra="forbid")

    proposers: list[Model] = Field(description="Models that write candidates (1-5)")
    aggregator: Model | None = Field(
        None,
        description="Critiques and writes the answer (default: the first proposer)",
    )
    candidates: int | None = Field(None, description="Candidates per proposer and layer (1-5, default 3)")
    temperature: float | None = Field(
        None, description="Sampling temperature of the candidates (default 0.9)"
    )
    layers: int | None = Field(None, description="Rounds of proposals (1-3, default 1)")
    critique_prompt: Text | None = Field(None, max_length=MAX_PROMPT_CHARS + 1)
    synthesis_prompt: Text | None = Field(None, max_length=MAX_PROMPT_CHARS + 1)

    def config(self) -> MoaConfig:
        """The checked configuration (raises InvalidRequest naming the field)."""
        return make_config(
            self.proposers,
            aggregator=self.aggregator,
            candidates=self.candidates,
            temperature=self.temperature,
            layers=self.layers,
            critique_prompt=self.critique_prompt,
            synthesis_prompt=self.synthesis_prompt,
        )


class CreateMoaConfig(MoaConfigBody):
    """``POST /moa-configs``: a new configuration under ``slug``, served at ``openpipe:moa-<slug>``."""

    slug: Text = Field(max_length=100)


def moa_view(m: ProjectMoa) -> dict[str, Any]:
    return {
        "object": "moa_config",
        "id": m.id,
        "slug": m.slug,
        "model": m.model,
        **m.config.as_json(),
        "created": iso(m.created_at),
        "updated": iso(m.updated_at),
    }
