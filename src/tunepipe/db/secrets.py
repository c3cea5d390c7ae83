"""Encryption at rest for provider credentials (Fernet: AES-128-CBC + HMAC).

The key comes from ``TUNEPIPE_SECRET_KEY`` or, for the embedded setup, a file created once
under ``TUNEPIPE_HOME``. Several servers sharing one Postgres must share the key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, secret_key: str | None, home: Path) -> SecretBox:
        if secret_key:
            return cls(secret_key.encode())
        path = home / "secret.key"
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, plain: str | None) -> str | None:
        return None if plain is None else self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str | None) -> str | None:
        if sealed is None:
            return None
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise RuntimeError(
                "A stored provider key cannot be decrypted: TUNEPIPE_SECRET_KEY differs from the "
                "key it was stored with"
            ) from exc
