"""Secrets at rest (BYOK provider keys): MultiFernet with keys from FIELD_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key can be put first and old tokens
re-encrypted with `python manage.py rotate_encryption_keys` before the old key is dropped.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

__all__ = ["InvalidToken", "decrypt", "encrypt", "fingerprint", "rotate"]


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        # Development only (production requires the setting): derive a stable key from SECRET_KEY.
        digest = hashlib.sha256(f"aisaas-field-encryption:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """Re-encrypt `token` under the first (newest) key."""
    return _fernet().rotate(token.encode()).decode()


def fingerprint(secret: str) -> str:
    """A short, non-reversible id for a secret (cache keys, change detection)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def reset_cache() -> None:
    _fernet.cache_clear()
