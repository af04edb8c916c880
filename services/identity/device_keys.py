"""A7 device keys: biometric login from the mobile app."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.identity import (
    DeviceCredential,
    User,
)
from services.errors import DomainError
from services.identity.common import Caller, audit, live_user
from services.unit_of_work import touch

# --- A7 device keys (biometric login) ---------------------------------------------------------------------

DEVICE_CHALLENGE_TTL = dt.timedelta(minutes=2)


class DeviceKeyInvalid(DomainError):
    """The device key is unknown, revoked or malformed."""

    code = "DEVICE_KEY_INVALID"
    message = (
        "Ключ устройства не распознан. Войдите по паролю или коду и подключите вход по биометрии заново."
    )


class DeviceSignatureInvalid(DomainError):
    """The device's signature of the challenge does not verify."""

    code = "DEVICE_SIGNATURE_INVALID"
    message = "Не удалось подтвердить вход на устройстве. Повторите попытку."


def _b64d(value: str) -> bytes:

    text = value.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(value: bytes) -> str:
    """Unpadded base64url."""

    return base64.urlsafe_b64encode(value).decode().rstrip("=")


def _load_public_key(value: str) -> bytes:
    """DER SubjectPublicKeyInfo of an ECDSA P-256 key given as PEM or base64(url) DER."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(_b64d(text))
    except (ValueError, TypeError) as error:
        raise DomainError(
            message="Некорректный открытый ключ устройства", field=["input", "publicKey"]
        ) from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DomainError(message="Нужен ключ ECDSA P-256", field=["input", "publicKey"])
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


async def register_device_key(
    session: AsyncSession, caller: Caller, user_id: int, public_key: str, name: str | None
) -> DeviceCredential:
    """A7: after a normal login the app registers the public half of a key its secure enclave holds."""
    der = _load_public_key(public_key)
    user = await live_user(session, user_id)
    row = DeviceCredential(
        user_id=user.id,
        credential_id=secrets.token_bytes(16),
        public_key=der,
        sign_count=0,
        name=(name or "").strip()[:128] or None,
        created_at=caller.now,
    )
    session.add(row)
    await session.flush()
    audit(
        session,
        caller,
        "user.device_key_add",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"device_key": row.id},
    )
    return row


def device_challenge(caller: Caller, credential_id: str) -> tuple[str, dt.datetime]:
    """A7 step 1: a signed, single-use challenge for the device to sign (stateless until used)."""
    expires = caller.now + DEVICE_CHALLENGE_TTL
    body = f"{credential_id.strip()}.{secrets.token_urlsafe(16)}.{int(expires.timestamp())}"
    mac = hmac.new(caller.secret.encode(), f"device:{body}".encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}", expires


async def login_with_device_key(
    session: AsyncSession, caller: Caller, credential_id: str, challenge: str, signature: str
) -> User:
    """A7 step 2: verify the device's ECDSA-SHA256 signature of the challenge and log in."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    parts = challenge.strip().split(".")
    if len(parts) != 4 or parts[0] != credential_id.strip():
        raise DeviceSignatureInvalid(field=["input", "challenge"])
    body = ".".join(parts[:3])
    mac = hmac.new(caller.secret.encode(), f"device:{body}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, parts[3]) or int(parts[2]) <= caller.now.timestamp():
        raise DeviceSignatureInvalid(field=["input", "challenge"])
    if (
        await caller.counters.hit(
            f"device-challenge:{parts[1]}", int(DEVICE_CHALLENGE_TTL.total_seconds()) + 60
        )
    ).count > 1:
        raise DeviceSignatureInvalid(field=["input", "challenge"])
    try:
        raw_id = _b64d(credential_id)
    except ValueError as error:
        raise DeviceKeyInvalid(field=["input", "credentialId"]) from error
    row = (
        await session.execute(
            select(DeviceCredential).where(DeviceCredential.credential_id == raw_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        raise DeviceKeyInvalid(field=["input", "credentialId"])
    key = serialization.load_der_public_key(row.public_key)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(_b64d(signature), challenge.strip().encode(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as error:
        raise DeviceSignatureInvalid(field=["input", "signature"]) from error
    user = await session.get(User, row.user_id)
    if user is None or user.deleted_at is not None:
        raise DeviceKeyInvalid(field=["input", "credentialId"])
    touch(session, users=[row.user_id])  # the key's last use is in the user's key list
    row.sign_count += 1
    row.last_used_at = caller.now
    audit(
        session,
        caller,
        "user.login",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"method": "device_key"},
    )
    return user


async def device_keys(session: AsyncSession, user_id: int) -> list[DeviceCredential]:
    """A7: the user's active device keys."""
    rows = await session.execute(
        select(DeviceCredential)
        .where(DeviceCredential.user_id == user_id, DeviceCredential.revoked_at.is_(None))
        .order_by(DeviceCredential.id)
    )
    return list(rows.scalars())


async def revoke_device_key(session: AsyncSession, caller: Caller, user_id: int, key_id: int) -> bool:
    """A7: stop a device key from logging in."""
    row = await session.get(DeviceCredential, key_id)
    if row is None or row.user_id != user_id or row.revoked_at is not None:
        return False
    touch(session, users=[user_id])
    row.revoked_at = caller.now
    audit(
        session,
        caller,
        "user.device_key_revoke",
        actor_user_id=user_id,
        user_id=user_id,
        changes={"device_key": key_id},
    )
    return True
