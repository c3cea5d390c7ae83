"""The UI's session cookie: sealed with the installation's key, refused when forged, foreign,
expired or made by another installation; the CSRF check."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cryptography.fernet import Fernet

from tunepipe.db.secrets import SecretBox
from tunepipe.web import session as sessions


def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


def test_session_round_trips_and_hides_the_key() -> None:
    b = box()
    made = sessions.issue("opk_secret_key_value")
    cookie = sessions.seal(b, made)
    assert "opk_secret_key_value" not in cookie
    assert sessions.unseal(b, cookie) == made
    assert sessions.issue("opk_secret_key_value").csrf != made.csrf  # a token per session


def test_session_unseal_refuses_forged_foreign_and_expired_cookies() -> None:
    b = box()
    cookie = sessions.seal(b, sessions.issue("opk_k"))
    assert sessions.unseal(b, None) is None
    assert sessions.unseal(b, "") is None
    assert sessions.unseal(b, cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")) is None
    assert sessions.unseal(b, "not a token at all") is None
    assert sessions.unseal(b, "x" * 5000) is None
    assert sessions.unseal(box(), cookie) is None  # another installation's key
    # What the same box seals for other purposes (a provider key) is no session.
    assert sessions.unseal(b, b.seal("sk-provider-key")) is None
    assert sessions.unseal(b, b.seal(json.dumps({"k": "opk_k", "c": "t", "t": time.time()}))) is None
    issued = time.time()
    assert sessions.unseal(b, cookie, now=issued + sessions.MAX_AGE_S + 5) is None
    assert sessions.unseal(b, cookie, now=issued - 3600) is None  # issued in the future


def test_session_key_file_is_shared_by_every_server_of_a_home(tmp_path: Path) -> None:
    first = SecretBox.from_settings(None, tmp_path)
    second = SecretBox.from_settings(None, tmp_path)  # another worker, or after a restart
    made = sessions.issue("opk_k")
    assert sessions.unseal(second, sessions.seal(first, made)) == made


def test_csrf_ok_needs_the_sessions_token() -> None:
    made = sessions.issue("opk_k")
    assert sessions.csrf_ok(made, made.csrf)
    assert not sessions.csrf_ok(made, None)
    assert not sessions.csrf_ok(made, "")
    assert not sessions.csrf_ok(made, made.csrf[:-1])
    assert not sessions.csrf_ok(sessions.issue("opk_k"), made.csrf)


def test_session_holds_several_keys_newest_last_and_at_most_max_keys() -> None:
    b = box()
    first = sessions.issue("opk_a")
    assert first.held == ("opk_a",)
    both = sessions.issue("opk_b", first.held)
    assert both.api_key == "opk_b" and both.held == ("opk_a", "opk_b")
    back = sessions.issue("opk_a", both.held)  # switching: the chosen key becomes the active one
    assert back.held == ("opk_b", "opk_a")
    assert sessions.unseal(b, sessions.seal(b, back)) == back
    many = first
    for i in range(sessions.MAX_KEYS + 3):
        many = sessions.issue(f"opk_{i}", many.held)
    assert len(many.held) == sessions.MAX_KEYS and many.held[-1] == many.api_key
    # A cookie whose active key is not among its keys, or whose keys are not strings, is refused.
    forged = {"p": "tunepipe-web-session", "k": "opk_x", "c": "t", "t": time.time()}
    assert sessions.unseal(b, b.seal(json.dumps({**forged, "ks": ["opk_y"]}))) is None
    assert sessions.unseal(b, b.seal(json.dumps({**forged, "ks": [1, "opk_x"]}))) is None
    # A cookie sealed before sessions held several keys still opens, holding its one key.
    old = sessions.unseal(b, b.seal(json.dumps(forged)))
    assert old is not None and old.held == ("opk_x",)
