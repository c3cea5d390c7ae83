"""API keys: ``opk_`` (a project's) or ``opa_`` (an administrator's) + 42 random alphanumerics,
stored only as a SHA-256 hash. The prefixes tell a reader (and a secret scanner) which is which;
authentication never relies on them, since keys given in the environment may look like anything.

A hash (not a slow KDF) is right here: keys are 250 bits of randomness, so there is nothing to
brute-force, and the hot path looks a key up on every request.
"""

from __future__ import annotations

import hashlib
import secrets
import string

PREFIX = "opk_"
ADMIN_PREFIX = "opa_"
_ALPHABET = string.ascii_letters + string.digits


def generate_key(prefix: str = PREFIX) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(42))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What lists may show of a key: enough to recognise it, too little to use it."""
    return key[:10]
