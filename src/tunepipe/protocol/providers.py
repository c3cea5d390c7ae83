"""Provider settings on the wire: a project's provider keys (``/provider-keys``), its external
providers and their models (``/external-providers``), and the base models of the installation
(``/base-models``). Stored secrets are only ever shown masked."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunepipe.domain.base_models import RegisteredModel
from tunepipe.domain.projects import ExternalModel, ExternalProvider, ProviderKey
from tunepipe.protocol.types import Text


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class ProviderKeyBody(_Body):
    api_key: Text | None = Field(None, alias="apiKey")
    base_url: Text | None = Field(None, alias="baseUrl")


class ExternalProviderBody(_Body):
    slug: Text
    kind: str = "openai"
    base_url: Text = Field(alias="baseUrl")
    api_key: Text | None = Field(None, alias="apiKey")
    api_version: Text | None = Field(None, alias="apiVersion")


class ExternalModelBody(_Body):
    slug: Text
    input_cost_per_million: float | None = Field(None, alias="inputCostPerMillion", ge=0)
    output_cost_per_million: float | None = Field(None, alias="outputCostPerMillion", ge=0)


class AddBaseModel(_Body):
    source: Text
    name: Text | None = None
    base: Text | None = None


def mask(secret: str | None) -> str | None:
    return None if not secret else f"{secret[:4]}…{secret[-4:]}" if len(secret) > 12 else "…"


def provider_key_view(k: ProviderKey) -> dict[str, Any]:
    return {"provider": k.provider, "apiKey": mask(k.api_key), "baseUrl": k.base_url}


def provider_view(p: ExternalProvider) -> dict[str, Any]:
    return {
        "slug": p.slug,
        "kind": p.kind,
        "baseUrl": p.base_url,
        "apiKey": mask(p.api_key),
        "apiVersion": p.api_version,
        "models": [external_model_view(p.slug, m) for m in p.models],
    }


def external_model_view(provider_slug: str, m: ExternalModel) -> dict[str, Any]:
    return {
        "slug": m.slug,
        "id": f"openpipe:{provider_slug}/{m.slug}",
        "inputCostPerMillion": m.input_cost_per_m,
        "outputCostPerMillion": m.output_cost_per_m,
    }


def base_model_view(m: RegisteredModel, *, admin: bool = False) -> dict[str, Any]:
    """A base model as a project sees it: what to call it and what it is, never where it lives
    on the server; ``admin`` adds what it was registered from and the directory it loads."""
    view: dict[str, Any] = {
        "id": f"local:{m.name}",
        "name": m.name,
        "kind": m.kind,
        "base": m.base,
        "createdAt": m.created_at,
    }
    if admin:
        view |= {"source": m.source, "path": m.path}
    return view
