"""Encryption at rest for secret configuration values.

A ``SecretBox`` holds the installation's current Fernet key and, while a key is being
replaced, the previous ones: it seals with the current key and opens with any of them
(``MultiFernet``), so that ``promenade rotate-key`` can re-encrypt everything online.
Configuration digests use a key of their own, derived from the current key with HKDF.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DIGEST_KEY_INFO = b"promenade configuration digest v1"


class SecretBox:
    """Seals and opens secret values with the installation's Fernet keys."""

    def __init__(self, keys: str | Sequence[str]) -> None:
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        self._current = Fernet(keys[0].encode())
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        self._digest_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=DIGEST_KEY_INFO
        ).derive(base64.urlsafe_b64decode(keys[0]))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret value cannot be decrypted with PROMENADE_SECRET_KEY") from exc

    def reseal(self, ciphertext: str) -> str | None:
        """The ciphertext sealed with the current key; None when it is already."""
        token = ciphertext.encode()
        try:
            self._current.decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(token).decode()
        except InvalidToken as exc:
            raise ValueError("secret value cannot be decrypted with any key given") from exc

    def seal_json(self, data: Any) -> str:
        return self.seal(json.dumps(data, sort_keys=True, separators=(",", ":")))

    def open_json(self, ciphertext: str) -> Any:
        return json.loads(self.open(ciphertext))

    def digest(self, data: Any) -> str:
        """A keyed hash of JSON data: equal for equal data (under one key), and it cannot be
        used to guess low-entropy secret values offline, as a plain hash could."""
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._digest_key, canonical, hashlib.sha256).hexdigest()
