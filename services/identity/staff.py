"""Staff accounts (operators, analysts, administrators) created by the CLI."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import AuditLogEntry
from models.identity import (
    User,
    UserRole,
)
from services.errors import DomainError
from services.identity.common import (
    _hash,
    check_name,
    check_password,
    collect,
    normalize_email,
    normalize_phone,
)
from services.identity.registration import _ensure_free
from services.unit_of_work import touch

# --- staff ------------------------------------------------------------------------------------------------


async def create_staff(
    session: AsyncSession,
    *,
    role: UserRole,
    phone: str,
    email: str | None,
    last_name: str,
    first_name: str,
    middle_name: str | None,
    password: str,
    now: dt.datetime,
) -> User:
    """Create an OPERATOR, ANALYST or ADMIN (``kabinet staff create``); same rules as A1, e-mail confirmed."""
    if role is UserRole.CUSTOMER:
        raise DomainError(message="Роль сотрудника: OPERATOR, ANALYST или ADMIN", field=["role"])
    e164, address, last, first, middle, secret = collect(
        lambda: normalize_phone(phone, ["phone"]),
        lambda: normalize_email(email, ["email"]) if email else None,
        lambda: check_name(last_name, ["lastName"]),
        lambda: check_name(first_name, ["firstName"]),
        lambda: check_name(middle_name, ["middleName"], required=False),
        lambda: check_password(password, password, ["password"], ["password"]),
    )
    await _ensure_free(session, e164, address)
    user = User(
        phone=e164,
        email=address,
        email_confirmed_at=now if address else None,
        last_name=last,
        first_name=first,
        middle_name=middle,
        password_hash=await _hash(secret),
        password_changed_at=now,
        role=role,
        show_hints=True,
    )
    session.add(user)
    await session.flush()
    touch(session, users=[user.id])
    session.add(
        AuditLogEntry(
            actor_user_id=None,
            action="user.create_staff",
            entity_type="user",
            entity_id=user.id,
            changes={"role": role.value, "phone": [None, e164], "email": [None, address]},
            created_at=now,
        )
    )
    return user
