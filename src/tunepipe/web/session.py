"""The web UI's session: one HttpOnly, SameSite=Strict cookie, sealed by the installation's key.

The cookie holds the API key the user signed in with, a per-session CSRF token and when it was
issued, encrypted and authenticated with the same Fernet key that seals stored provider keys
(:class:`~tunepipe.db.secrets.SecretBox`): scripts cannot read it (HttpOnly), other sites never
send it (SameSite=Strict), and nobody without the server's key can read or forge it. Every
server sharing that key (several workers, several hosts) accepts it and nothing is kept in
memory, so a restart signs nobody out. Each request authenticates the key again, so revoking a
key ends its sessions at once. A ``purpose`` field keeps a sealed provider key, which the same
box produces, from passing for a session.

Every state-changing request must carry the session's CSRF token, in the ``csrf_token`` form
field or the ``X-CSRF-Token`` header (htmx sends it, see ``static/app.js``); the token is
compared in constant time.

A browser may sign in with several keys (one per project, say): the cookie holds each of them
(at most :data:`MAX_KEYS`) and which one is active; the pages show the active key's project,
and switching makes another of the held keys the active one.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import orjson

from tunepipe.db.secrets import SecretBox

COOKIE = "tunepipe_session"
MAX_AGE_S = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_PURPOSE = "tunepipe-web-session"
MAX_KEYS = 8  # keys one browser may hold at once (the cookie stays far below 4 KB)


@dataclass(frozen=True, slots=True)
class Session:
    api_key: str  # the active key
    csrf: str
    issued_at: float
    keys: tuple[str, ...] = ()  # every key this browser signed in with, the active one included

    @property
    def held(self) -> tuple[str, ...]:
        return self.keys or (self.api_key,)


def issue(api_key: str, keys: tuple[str, ...] = ()) -> Session:
    """A new session whose active key is ``api_key``, holding ``keys`` too (the newest kept
    when there are more than :data:`MAX_KEYS`)."""
    held = tuple(k for k in keys if k != api_key)[-(MAX_KEYS - 1) :] + (api_key,)
    return Session(api_key=api_key, csrf=secrets.token_urlsafe(32), issued_at=time.time(), keys=held)


def seal(box: SecretBox, session: Session) -> str:
    payload = {
        "p": _PURPOSE,
        "k": session.api_key,
        "c": session.csrf,
        "t": session.issued_at,
        "ks": list(session.held),
    }
    sealed = box.seal(orjson.dumps(payload).decode())
    assert sealed is not None
    return sealed


def unseal(box: SecretBox, cookie: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie holds; None for a missing, forged, foreign or expired one."""
    if not cookie or len(cookie) > 4096:
        return None
    try:
        plain = box.open(cookie)
        data = orjson.loads(plain or "")
    except (RuntimeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("p") != _PURPOSE:
        return None
    key, csrf, issued = data.get("k"), data.get("c"), data.get("t")
    if not isinstance(key, str) or not isinstance(csrf, str) or not isinstance(issued, int | float):
        return None
    age = (time.time() if now is None else now) - issued
    if age < 0 or age > MAX_AGE_S:
        return None
    held = data.get("ks", [key])
    if not isinstance(held, list) or len(held) > MAX_KEYS or not all(isinstance(k, str) for k in held):
        return None
    if key not in held:
        return None
    return Session(api_key=key, csrf=csrf, issued_at=float(issued), keys=tuple(held))


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(session.csrf.encode(), (given or "").encode())
