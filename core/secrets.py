"""Encryption of secrets at rest (S3 secret keys must stay usable for HMAC, so they
are encrypted, not hashed) and password hashing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _random
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

NONCE_BYTES = 12


class SecretBox:
    """AES-256-GCM with the instance's `master.key` (created 0600 on first start)."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._key = key

    def derive(self, label: str) -> bytes:
        """A key for one purpose (e.g. signing download links), stable across restarts."""
        return hmac.new(self._key, label.encode(), hashlib.sha256).digest()

    @classmethod
    def from_key_file(cls, path: Path) -> SecretBox:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(AESGCM.generate_key(bit_length=256))
                fh.flush()
                os.fsync(fh.fileno())
        key = path.read_bytes()
        if len(key) != 32:
            raise ValueError(f"{path.name} must hold 32 bytes")
        return cls(key)

    def encrypt(self, plaintext: str, context: str) -> bytes:
        # The context (e.g. the access key id) is bound as associated data so a
        # ciphertext cannot be moved to another row.
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, context: str) -> str:
        return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode()).decode()


_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(password.encode())
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt_b64}${digest_b64}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    actual = Scrypt(salt=salt, length=len(expected), n=int(n), r=int(r), p=int(p)).derive(password.encode())
    return hmac.compare_digest(actual, expected)


def random_token(nbytes: int = 32) -> str:
    return _random.token_urlsafe(nbytes)
