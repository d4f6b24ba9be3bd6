"""Encryption at rest for secret configuration values."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Seals and opens secret values with the installation's Fernet key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())
        # A separate key for digests, derived from the same secret.
        self._digest_key = hashlib.sha256(b"promenade-digest:" + base64.urlsafe_b64decode(key))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret value cannot be decrypted with PROMENADE_SECRET_KEY") from exc

    def seal_json(self, data: Any) -> str:
        return self.seal(json.dumps(data, sort_keys=True, separators=(",", ":")))

    def open_json(self, ciphertext: str) -> Any:
        return json.loads(self.open(ciphertext))

    def digest(self, data: Any) -> str:
        """A keyed hash of JSON data: equal for equal data, and it cannot be used to guess
        low-entropy secret values offline, as a plain hash could."""
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._digest_key.digest(), canonical, hashlib.sha256).hexdigest()
