"""A5 VK ID login and J8 connected login services."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.identity import (
    Consent,
    ConsentKind,
    ExternalIdentity,
    IdentityProvider,
    User,
    UserRole,
    VkLoginFlow,
)
from services import codes
from services.errors import DomainError, FieldRequired
from services.identity.common import (
    Caller,
    audit,
    check_name,
    live_user,
    normalize_email,
    normalize_phone,
    user_by_phone,
)
from services.identity.errors import ConsentRequired
from services.identity.qr import _sha
from services.unit_of_work import touch

# --- A5 VK login and J8 connected services ----------------------------------------------------------------

VK_STATE_TTL = dt.timedelta(minutes=10)
VK_START_LIMIT_PER_IP = (60, 600)
"""(flows, seconds): VK logins started from one client address per 10 minutes (each stores a row)."""


class VkUnavailable(DomainError):
    """Logging in with VK is not configured or VK does not answer."""

    code = "VK_UNAVAILABLE"
    message = "Вход через VK сейчас недоступен. Войдите по номеру телефона или электронной почте."


class VkStateInvalid(DomainError):
    """The VK login's state is unknown or expired."""

    code = "VK_STATE_INVALID"
    message = "Сеанс входа через VK устарел. Повторите попытку."


class VkLinkRequiresProof(DomainError):
    """A5: the VK phone is that of a cabinet VK is not connected to; only its owner may connect VK."""

    code = "LOGIN_SERVICE_LINK_REQUIRES_PROOF"
    message = (
        "Номер телефона из профиля VK уже зарегистрирован в личном кабинете. Войдите по номеру телефона "
        "с паролем или кодом из SMS и подключите VK в профиле (раздел «Сервисы авторизации»)."
    )


class VkPhoneMissing(DomainError):
    """The VK profile has no phone number to register a cabinet with."""

    code = "VK_PHONE_MISSING"
    message = (
        "В профиле ВКонтакте отсутствуют данные о номере телефона. Укажите номер телефона в VK "
        "или зарегистрируйтесь по номеру телефона."
    )


class VkAlreadyLinked(DomainError):
    """This VK profile is connected to another cabinet."""

    code = "VK_ALREADY_LINKED"
    message = "Этот профиль VK уже подключен к другому личному кабинету."


@dataclass(frozen=True, slots=True)
class VkSettings:
    """Where VK ID lives and who we are there."""

    client_id: str | None
    client_secret: str | None
    authorize_url: str
    token_url: str
    userinfo_url: str


def _vk_client(vk: VkSettings, redirect_uri: str) -> Any:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(
        client_id=vk.client_id,
        client_secret=vk.client_secret,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=15.0,
    )


async def start_vk_login(
    session: AsyncSession, caller: Caller, vk: VkSettings, redirect_uri: str, *, viewer_user_id: int | None
) -> tuple[str, str]:
    """A5 step 1 / J8: the URL to open (VK's consent page) and the ``state`` it will come back with.

    The flow is kept server-side (:class:`VkLoginFlow`): the state (stored hashed), who started it
    (``viewer_user_id``: a logged-in caller starts a J8 connect, an anonymous one an A5 login), the PKCE
    verifier and the nonce (neither is ever sent to the client), the redirect URI and the expiry."""
    if not vk.client_id:
        raise VkUnavailable()
    redirect = (redirect_uri or "").strip()
    if not redirect:
        raise FieldRequired(field=["input", "redirectUri"])
    if caller.client_ip:
        hit = await caller.counters.hit(f"vk:start:ip:{caller.client_ip}", VK_START_LIMIT_PER_IP[1])
        if hit.count > VK_START_LIMIT_PER_IP[0]:
            raise codes.RetryLater(retry_after_seconds=hit.retry_after_seconds)
    touch(session, private=VkLoginFlow)
    await session.execute(delete(VkLoginFlow).where(VkLoginFlow.expires_at <= caller.now))
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters (RFC 7636: 43–128)
    nonce = secrets.token_urlsafe(24)
    session.add(
        VkLoginFlow(
            state_hash=_sha(state),
            user_id=viewer_user_id,
            code_verifier=verifier,
            nonce=nonce,
            redirect_uri=redirect,
            expires_at=caller.now + VK_STATE_TTL,
            created_at=caller.now,
        )
    )
    await session.flush()
    client = _vk_client(vk, redirect)
    try:
        url, _ = client.create_authorization_url(
            vk.authorize_url, state=state, code_verifier=verifier, nonce=nonce, scope="phone email"
        )
    finally:
        await client.aclose()
    return url, state


@dataclass(frozen=True, slots=True)
class _VkFlow:
    code_verifier: str
    nonce: str
    redirect_uri: str


async def _take_vk_flow(
    session: AsyncSession, caller: Caller, state: str, redirect_uri: str, viewer_user_id: int | None
) -> _VkFlow:
    """Consume the flow of ``state`` (deleted at once, whatever happens next: a state works once) and check
    it was started by this kind of caller: the same logged-in user for J8, an anonymous caller for A5."""
    touch(session, private=VkLoginFlow)
    row = (
        await session.execute(
            delete(VkLoginFlow)
            .where(VkLoginFlow.state_hash == _sha((state or "").strip()))
            .returning(
                VkLoginFlow.user_id,
                VkLoginFlow.code_verifier,
                VkLoginFlow.nonce,
                VkLoginFlow.redirect_uri,
                VkLoginFlow.expires_at,
            )
        )
    ).one_or_none()
    if (
        row is None
        or row.expires_at <= caller.now
        or row.user_id != viewer_user_id
        or row.redirect_uri != (redirect_uri or "").strip()
    ):
        raise VkStateInvalid(field=["input", "state"])
    return _VkFlow(row.code_verifier, row.nonce, row.redirect_uri)


def _id_token_nonce(id_token: str) -> str:
    """The ``nonce`` claim of an ID token received straight from VK's token endpoint over TLS (OpenID
    Connect Core 3.1.3.7: TLS authenticates the issuer there, so the signature is not checked)."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as error:
        raise VkUnavailable() from error
    return str(claims.get("nonce") or "") if isinstance(claims, dict) else ""


async def _vk_profile(caller: Caller, vk: VkSettings, code: str, state: str, flow: _VkFlow) -> dict[str, Any]:
    client = _vk_client(vk, flow.redirect_uri)
    try:
        token = await client.fetch_token(
            vk.token_url, code=code, code_verifier=flow.code_verifier, state=state
        )
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if id_token and not hmac.compare_digest(_id_token_nonce(str(id_token)), flow.nonce):
            raise VkStateInvalid(field=["input", "state"])
        response = await client.get(vk.userinfo_url)
        response.raise_for_status()
        data = response.json()
    except DomainError:
        raise
    except Exception as error:  # network, OAuth error, bad JSON
        raise VkUnavailable() from error
    finally:
        await client.aclose()
    user = data.get("user", data) if isinstance(data, dict) else {}
    if not user.get("user_id") and not user.get("id"):
        raise VkUnavailable()
    return user


async def complete_vk_login(
    session: AsyncSession,
    caller: Caller,
    vk: VkSettings,
    *,
    code: str,
    state: str,
    redirect_uri: str,
    consent: bool,
    viewer_user_id: int | None,
) -> User:
    """A5 step 2 / J8: log in with VK, register with VK (phone required), or connect VK to the caller.

    The state must be one this caller started (:func:`_take_vk_flow`). A VK profile that is not connected
    yet never opens an existing cabinet: when its phone is a cabinet's, the owner has to log in with the
    password or an SMS code and connect VK in the profile (:class:`VkLinkRequiresProof`)."""
    if not vk.client_id:
        raise VkUnavailable()
    flow = await _take_vk_flow(session, caller, state, redirect_uri, viewer_user_id)
    profile = await _vk_profile(caller, vk, code, state, flow)
    subject = str(profile.get("user_id") or profile.get("id"))
    found = (
        await session.execute(
            select(ExternalIdentity).where(
                ExternalIdentity.provider == IdentityProvider.VK, ExternalIdentity.subject == subject
            )
        )
    ).scalar_one_or_none()
    if viewer_user_id is not None:  # J8: connect VK to the logged-in cabinet
        user = await live_user(session, viewer_user_id)
        if found is not None and found.user_id != user.id:
            raise VkAlreadyLinked()
        if found is None:
            session.add(
                ExternalIdentity(
                    provider=IdentityProvider.VK, subject=subject, user_id=user.id, profile=profile
                )
            )
            audit(
                session,
                caller,
                "user.vk_link",
                actor_user_id=user.id,
                user_id=user.id,
                changes={"vk": subject},
            )
        return user
    if found is not None:
        known = await session.get(User, found.user_id)
        if known is not None and known.deleted_at is None:
            touch(session, users=[known.id])  # the connected service's profile
            found.profile = profile
            audit(
                session,
                caller,
                "user.login",
                actor_user_id=known.id,
                user_id=known.id,
                changes={"method": "vk"},
            )
            return known
    raw_phone = str(profile.get("phone") or "").strip()
    if not raw_phone:
        raise VkPhoneMissing()
    phone = normalize_phone(
        raw_phone if raw_phone.startswith("+") or len(raw_phone) <= 10 else "+" + raw_phone, ["vk", "phone"]
    )
    if await user_by_phone(session, phone) is not None:
        raise VkLinkRequiresProof()
    if not consent:
        raise ConsentRequired(field=["input", "consent"])
    email = None
    with contextlib.suppress(DomainError):
        email = normalize_email(profile.get("email"), ["vk", "email"])
    user = User(
        phone=phone,
        email=email,
        last_name=_vk_name(profile.get("last_name")),
        first_name=_vk_name(profile.get("first_name")),
        password_hash=None,
        role=UserRole.CUSTOMER,
        show_hints=True,
    )
    session.add(user)
    await session.flush()
    touch(session, users=[user.id])
    session.add(
        Consent(
            user_id=user.id,
            kind=ConsentKind.PERSONAL_DATA,
            policy_version=caller.policy_version,
            accepted_at=caller.now,
            client_ip=caller.client_ip,
            user_agent=caller.user_agent,
        )
    )
    audit(
        session,
        caller,
        "user.register",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"phone": [None, phone], "email": [None, email], "method": "vk"},
    )
    session.add(
        ExternalIdentity(provider=IdentityProvider.VK, subject=subject, user_id=user.id, profile=profile)
    )
    audit(
        session,
        caller,
        "user.login",
        actor_user_id=user.id,
        user_id=user.id,
        changes={"method": "vk", "vk": subject},
    )
    return user


def _vk_name(value: Any) -> str:
    """A VK name if it passes A1's rules, else a placeholder the user edits in the profile (J1)."""
    try:
        return check_name(str(value or ""), ["vk"]) or "Пользователь"
    except DomainError:
        return "Пользователь"


async def login_services(session: AsyncSession, user_id: int) -> list[ExternalIdentity]:
    """J8: the user's connected login services."""
    rows = await session.execute(
        select(ExternalIdentity).where(ExternalIdentity.user_id == user_id).order_by(ExternalIdentity.id)
    )
    return list(rows.scalars())


async def unlink_login_service(session: AsyncSession, caller: Caller, user_id: int, identity_id: int) -> bool:
    """J8: disconnect a login service."""
    row = await session.get(ExternalIdentity, identity_id)
    if row is None or row.user_id != user_id:
        return False
    await session.delete(row)
    touch(session, users=[user_id])
    audit(
        session, caller, "user.vk_unlink", actor_user_id=user_id, user_id=user_id, changes={"vk": row.subject}
    )
    return True
