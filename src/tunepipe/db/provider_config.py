"""Per-project provider credentials and external (OpenAI/Azure-compatible) providers.

Secrets are sealed with :class:`SecretBox` before they reach a table and opened on the way out.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from tunepipe.db.schema import external_models, external_providers, provider_keys
from tunepipe.db.secrets import SecretBox
from tunepipe.domain.clock import now_ms
from tunepipe.domain.projects import ExternalModel, ExternalProvider, ProviderKey
from tunepipe.errors import Conflict, NotFound


def set_provider_key(
    conn: Connection,
    box: SecretBox,
    project_id: str,
    provider: str,
    api_key: str | None,
    base_url: str | None,
) -> None:
    conn.execute(
        delete(provider_keys).where(
            provider_keys.c.project_id == project_id, provider_keys.c.provider == provider
        )
    )
    conn.execute(
        insert(provider_keys).values(
            project_id=project_id,
            provider=provider,
            api_key_enc=box.seal(api_key),
            base_url=base_url,
            updated_at=now_ms(),
        )
    )


def delete_provider_key(conn: Connection, project_id: str, provider: str) -> bool:
    result = conn.execute(
        delete(provider_keys).where(
            provider_keys.c.project_id == project_id, provider_keys.c.provider == provider
        )
    )
    return result.rowcount > 0


def list_provider_keys(conn: Connection, box: SecretBox, project_id: str) -> dict[str, ProviderKey]:
    rows = conn.execute(select(provider_keys).where(provider_keys.c.project_id == project_id)).all()
    return {
        r.provider: ProviderKey(provider=r.provider, api_key=box.open(r.api_key_enc), base_url=r.base_url)
        for r in rows
    }


def create_external_provider(
    conn: Connection,
    box: SecretBox,
    project_id: str,
    *,
    slug: str,
    kind: str,
    base_url: str,
    api_key: str | None,
    api_version: str | None,
) -> ExternalProvider:
    provider_id = str(uuid.uuid4())
    try:
        conn.execute(
            insert(external_providers).values(
                id=provider_id,
                project_id=project_id,
                slug=slug,
                kind=kind,
                base_url=base_url,
                api_key_enc=box.seal(api_key),
                api_version=api_version,
                created_at=now_ms(),
            )
        )
    except IntegrityError as exc:
        raise Conflict(f"An external provider with slug {slug!r} already exists") from exc
    return ExternalProvider(
        id=provider_id,
        slug=slug,
        kind=kind,
        base_url=base_url,
        api_key=api_key,
        api_version=api_version,
        models=(),
    )


def delete_external_provider(conn: Connection, project_id: str, slug: str) -> None:
    result = conn.execute(
        delete(external_providers).where(
            external_providers.c.project_id == project_id, external_providers.c.slug == slug
        )
    )
    if result.rowcount == 0:
        raise NotFound(f"No external provider with slug {slug!r}")


def list_external_providers(conn: Connection, box: SecretBox, project_id: str) -> list[ExternalProvider]:
    prows = conn.execute(
        select(external_providers)
        .where(external_providers.c.project_id == project_id)
        .order_by(external_providers.c.created_at)
    ).all()
    mrows = conn.execute(
        select(external_models)
        .join(external_providers, external_providers.c.id == external_models.c.provider_id)
        .where(external_providers.c.project_id == project_id)
        .order_by(external_models.c.created_at)
    ).all()
    models: dict[str, list[ExternalModel]] = {}
    for m in mrows:
        models.setdefault(m.provider_id, []).append(
            ExternalModel(
                slug=m.slug, input_cost_per_m=m.input_cost_per_m, output_cost_per_m=m.output_cost_per_m
            )
        )
    return [
        ExternalProvider(
            id=p.id,
            slug=p.slug,
            kind=p.kind,
            base_url=p.base_url,
            api_key=box.open(p.api_key_enc),
            api_version=p.api_version,
            models=tuple(models.get(p.id, ())),
        )
        for p in prows
    ]


def _provider_id(conn: Connection, project_id: str, slug: str) -> str:
    pid = conn.execute(
        select(external_providers.c.id).where(
            external_providers.c.project_id == project_id, external_providers.c.slug == slug
        )
    ).scalar()
    if pid is None:
        raise NotFound(f"No external provider with slug {slug!r}")
    return str(pid)


def add_external_model(
    conn: Connection,
    project_id: str,
    provider_slug: str,
    *,
    slug: str,
    input_cost_per_m: float | None,
    output_cost_per_m: float | None,
) -> ExternalModel:
    provider_id = _provider_id(conn, project_id, provider_slug)
    try:
        conn.execute(
            insert(external_models).values(
                id=str(uuid.uuid4()),
                provider_id=provider_id,
                slug=slug,
                input_cost_per_m=input_cost_per_m,
                output_cost_per_m=output_cost_per_m,
                created_at=now_ms(),
            )
        )
    except IntegrityError as exc:
        raise Conflict(f"Model {slug!r} is already registered under {provider_slug!r}") from exc
    return ExternalModel(slug=slug, input_cost_per_m=input_cost_per_m, output_cost_per_m=output_cost_per_m)


def remove_external_model(conn: Connection, project_id: str, provider_slug: str, slug: str) -> None:
    provider_id = _provider_id(conn, project_id, provider_slug)
    result = conn.execute(
        delete(external_models).where(
            external_models.c.provider_id == provider_id, external_models.c.slug == slug
        )
    )
    if result.rowcount == 0:
        raise NotFound(f"No model {slug!r} under provider {provider_slug!r}")
