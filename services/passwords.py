"""Password hashing with Argon2id (argon2-cffi), rehashing when the parameters change.

:func:`verify_password` always runs one argon2 verification, also when there is no hash to check (an
unknown login, a cabinet registered through VK without a password): it then verifies against
:func:`dummy_hash`, made with the same parameters as real hashes, so the answer takes as long whether or
not the login names a cabinet (issue 15, finding 10).
"""

from __future__ import annotations

import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_dummy: str | None = None
_dummy_lock = threading.Lock()


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (salted; encodes its own parameters)."""
    return _hasher.hash(password)


def dummy_hash() -> str:
    """A hash of a random password nobody knows, with the current parameters; made once per process."""
    global _dummy
    if _dummy is None:
        with _dummy_lock:
            if _dummy is None:
                _dummy = _hasher.hash(secrets.token_urlsafe(24))
    return _dummy


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches the hash; False for a mismatch, an unusable hash or no hash at all.

    Exactly one argon2 verification either way (see the module's docstring)."""
    try:
        if not password_hash:
            _hasher.verify(dummy_hash(), password)
            return False
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with parameters other than the current ones (rehash on login)."""
    return _hasher.check_needs_rehash(password_hash)
