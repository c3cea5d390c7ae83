"""Settings: the project's API keys (create, shown once; revoke; rate limits), provider keys
(write-only), external providers and their models, mixture-of-agents configurations, and the
projects this browser is signed in to (the switcher in the navigation).

Every page and form calls the services the API's routes call (``api/routes/keys.py``,
``providers.py``, ``moa.py``). A read-only key sees the keys and configurations and no
controls, and its ``POST``\\ s are refused (403) by :func:`~tunepipe.web.guard.action`; provider
keys and external providers are listed for read/write keys only, as ``GET /provider-keys`` and
``GET /external-providers`` are. A stored secret is never shown back: a provider key shows as
"set" with its last four characters at most. A refused change (a base URL the network policy
refuses, a bad limit) shows the settings again with the reason and its status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tunepipe.domain.moa import MoaConfig, make_config
from tunepipe.errors import InvalidRequest, TunepipeError
from tunepipe.services.projects.providers import BUILTIN, EXTERNAL_KINDS
from tunepipe.web import session as sessions
from tunepipe.web.guard import (
    Signed,
    action,
    container,
    csrf_refusal,
    error_page,
    key_ref,
    local_path,
    page,
    page_context,
    renderer,
    set_session,
    signed_in,
)
from tunepipe.web.render import redirect

MAX_TEXT = 500
LIMIT_FIELDS = (
    ("rpm", "Requests a minute"),
    ("tpm", "Tokens a minute"),
    ("max_concurrency", "Concurrent requests"),
)
NOTICES = {
    "key-revoked": "The key was revoked: it no longer works, in the API or here.",
    "limits": "The key's rate limits were saved.",
    "provider-key": "The provider key was saved. It is never shown again.",
    "provider-key-removed": "The provider key was removed.",
    "external": "The external provider was added.",
    "external-removed": "The external provider was removed.",
    "model": "The model was added.",
    "model-removed": "The model was removed.",
    "moa": "The mixture-of-agents configuration was saved.",
    "moa-removed": "The mixture-of-agents configuration was deleted.",
}


def last4(secret: str | None) -> str | None:
    """What is shown of a stored secret: its last four characters, and only of a long one."""
    return None if not secret else secret[-4:] if len(secret) > 12 else ""


def _text(form: FormData, name: str, *, required: bool = False, label: str = "") -> str:
    value = str(form.get(name) or "").strip()
    if len(value) > MAX_TEXT or "\x00" in value:
        raise InvalidRequest(f"{label or name} is at most {MAX_TEXT} characters, without NUL", param=name)
    if required and not value:
        raise InvalidRequest(f"{label or name} is needed", param=name)
    return value


def _number(form: FormData, name: str, kind: type[int] | type[float], label: str) -> Any:
    raw = _text(form, name)
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise InvalidRequest(f"{label} must be a number", param=name) from None


async def _render(
    request: Request,
    signed: Signed,
    *,
    status: int = 200,
    error: str | None = None,
    new_key: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    tp = container(request)
    principal = signed.principal
    writer = not principal.read_only
    keys = await tp.projects.list_keys(principal.project)
    provider_keys = await tp.providers.list_keys(principal.project.id) if writer else []
    externals = await tp.providers.list_external(principal.project.id) if writer else []
    moas = await tp.moa.list_configs(principal)
    context = page_context(
        request,
        signed,
        keys=keys,
        this_key=principal.key_id,
        limit_fields=LIMIT_FIELDS,
        provider_keys=[
            (k.provider, k.api_key is not None, last4(k.api_key), k.base_url) for k in provider_keys
        ],
        builtin=BUILTIN,
        kinds=EXTERNAL_KINDS,
        externals=externals,
        moas=moas,
        notice=NOTICES.get(request.query_params.get("saved", "")),
        error=error,
        new_key=new_key,
        form=form or {},
    )
    return renderer(request).render(request, "settings.html", context, status_code=status)


async def _settings(request: Request, signed: Signed) -> Response:
    return await _render(request, signed)


def _settings_action(
    handler: Callable[[Request, Signed, FormData], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """An action whose refusal shows the settings again with the reason (and what was typed,
    but never a secret)."""

    async def run(request: Request, signed: Signed, form: FormData) -> Response:
        try:
            return await handler(request, signed, form)
        except TunepipeError as exc:
            typed = {
                k: str(v)
                for k, v in form.items()
                if k not in ("csrf_token", "api_key") and isinstance(v, str)
            }
            return await _render(request, signed, status=exc.status_code, error=exc.message, form=typed)

    return action(run)


def _done(request: Request, what: str, anchor: str) -> Response:
    return redirect(request, f"/settings?{urlencode({'saved': what})}#{anchor}")


# API keys ------------------------------------------------------------------------------------


async def _create_key(request: Request, signed: Signed, form: FormData) -> Response:
    name = _text(form, "name", label="A name")
    read_only = form.get("role") == "read-only"
    _, plain = await container(request).projects.create_key(
        signed.principal.project, read_only=read_only, name=name
    )
    # Shown in this response only: it is not in a URL, and only its hash is stored.
    return await _render(request, signed, status=201, new_key=plain)


async def _revoke_key(request: Request, signed: Signed, form: FormData) -> Response:
    await container(request).projects.revoke_key(signed.principal.project, request.path_params["key_id"])
    return _done(request, "key-revoked", "keys")


async def _set_limits(request: Request, signed: Signed, form: FormData) -> Response:
    changes = {name: _number(form, name, int, label) for name, label in LIMIT_FIELDS}
    for name, label in LIMIT_FIELDS:
        if changes[name] is not None and changes[name] < 1:
            raise InvalidRequest(f"{label}: a positive whole number, or empty for no limit", param=name)
    await container(request).projects.set_limits(
        signed.principal.project, request.path_params["key_id"], changes
    )
    return _done(request, "limits", "keys")


# Provider keys and external providers --------------------------------------------------------


async def _set_provider_key(request: Request, signed: Signed, form: FormData) -> Response:
    provider = _text(form, "provider", required=True, label="A provider")
    api_key = _text(form, "api_key") or None
    base_url = _text(form, "base_url") or None
    await container(request).providers.set_key(signed.principal.project.id, provider, api_key, base_url)
    return _done(request, "provider-key", "provider-keys")


async def _remove_provider_key(request: Request, signed: Signed, form: FormData) -> Response:
    await container(request).providers.delete_key(
        signed.principal.project.id, request.path_params["provider"]
    )
    return _done(request, "provider-key-removed", "provider-keys")


async def _add_external(request: Request, signed: Signed, form: FormData) -> Response:
    await container(request).providers.add_external(
        signed.principal.project.id,
        slug=_text(form, "slug", required=True, label="A slug"),
        kind=_text(form, "kind") or "openai",
        base_url=_text(form, "base_url", required=True, label="A base URL"),
        api_key=_text(form, "api_key") or None,
        api_version=_text(form, "api_version") or None,
    )
    return _done(request, "external", "external")


async def _remove_external(request: Request, signed: Signed, form: FormData) -> Response:
    await container(request).providers.remove_external(
        signed.principal.project.id, request.path_params["slug"]
    )
    return _done(request, "external-removed", "external")


async def _add_model(request: Request, signed: Signed, form: FormData) -> Response:
    costs = [
        _number(form, n, float, label)
        for n, label in (("input_cost", "Input cost"), ("output_cost", "Output cost"))
    ]
    if any(c is not None and c < 0 for c in costs):
        raise InvalidRequest("Costs cannot be negative", param="input_cost")
    await container(request).providers.add_model(
        signed.principal.project.id,
        request.path_params["slug"],
        _text(form, "model", required=True, label="A model slug"),
        costs[0],
        costs[1],
    )
    return _done(request, "model", "external")


async def _remove_model(request: Request, signed: Signed, form: FormData) -> Response:
    p = request.path_params
    await container(request).providers.remove_model(signed.principal.project.id, p["slug"], p["model"])
    return _done(request, "model-removed", "external")


# Mixture-of-agents configurations ------------------------------------------------------------


def _moa_config(form: FormData) -> MoaConfig:
    proposers = [p.strip() for p in _text(form, "proposers").replace("\n", ",").split(",") if p.strip()]
    return make_config(
        proposers,
        aggregator=_text(form, "aggregator") or None,
        candidates=_number(form, "candidates", int, "Candidates"),
        temperature=_number(form, "temperature", float, "Temperature"),
        layers=_number(form, "layers", int, "Layers"),
    )


async def _create_moa(request: Request, signed: Signed, form: FormData) -> Response:
    slug = _text(form, "slug", required=True, label="A slug")
    await container(request).moa.create(signed.principal, slug, _moa_config(form))
    return _done(request, "moa", "moa")


async def _replace_moa(request: Request, signed: Signed, form: FormData) -> Response:
    await container(request).moa.replace(signed.principal, request.path_params["slug"], _moa_config(form))
    return _done(request, "moa", "moa")


async def _delete_moa(request: Request, signed: Signed, form: FormData) -> Response:
    await container(request).moa.delete(signed.principal, request.path_params["slug"])
    return _done(request, "moa-removed", "moa")


# The project switcher ------------------------------------------------------------------------


async def switch_project(request: Request) -> Response:
    """Make another of the keys this browser holds the active one. Any key may switch (it
    changes no data), but like every ``POST`` it needs the session's CSRF token."""
    signed = await signed_in(request)
    if signed is None:
        return error_page(request, None, 401, "Sign in first.")
    form = await request.form()
    if (forged := csrf_refusal(request, signed, form)) is not None:
        return forged
    wanted = str(form.get("key") or "")
    chosen = next((k for k in signed.session.held if key_ref(k) == wanted), None)
    if chosen is None or wanted not in {h.ref for h in signed.others}:
        return error_page(request, signed, 404, "This browser is not signed in to that project.")
    # Back to the same section: an id on the page belongs to the project left.
    section = "/" + local_path(str(form.get("next") or "")).lstrip("/").split("/", 1)[0].split("?", 1)[0]
    return set_session(request, redirect(request, section), sessions.issue(chosen, signed.session.held))


settings_page = page(_settings)
_get, _post = ["GET"], ["POST"]
ROUTES: tuple[tuple[str, Callable[[Request], Awaitable[Response]], list[str]], ...] = (
    ("/settings", settings_page, _get),
    ("/settings/keys", _settings_action(_create_key), _post),
    ("/settings/keys/{key_id}/revoke", _settings_action(_revoke_key), _post),
    ("/settings/keys/{key_id}/limits", _settings_action(_set_limits), _post),
    ("/settings/provider-keys", _settings_action(_set_provider_key), _post),
    ("/settings/provider-keys/{provider}/remove", _settings_action(_remove_provider_key), _post),
    ("/settings/external-providers", _settings_action(_add_external), _post),
    ("/settings/external-providers/{slug}/remove", _settings_action(_remove_external), _post),
    ("/settings/external-providers/{slug}/models", _settings_action(_add_model), _post),
    ("/settings/external-providers/{slug}/models/{model}/remove", _settings_action(_remove_model), _post),
    ("/settings/moa", _settings_action(_create_moa), _post),
    ("/settings/moa/{slug}", _settings_action(_replace_moa), _post),
    ("/settings/moa/{slug}/remove", _settings_action(_delete_moa), _post),
    ("/switch-project", switch_project, _post),
)
