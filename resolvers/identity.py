"""Users and the current caller: loaders and thin resolvers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from models.identity import (
    AuthSession,
    ClientKind,
    CodePurpose,
    DeviceCredential,
    ExternalIdentity,
    QrLoginChallenge,
    QrLoginStatus,
    User,
)
from resolvers.context import Info
from resolvers.loaders import ById
from resolvers.permissions import require_viewer, viewer
from services import sessions
from services.codes import SentCode
from services.errors import DomainError
from services.identity import common, profile, qr, registration, vk
from services.identity import device_keys as keys
from services.identity import login as logins
from services.limits import counters_of
from services.sessions import Tokens


class UserById(ById):
    """Users by id."""

    model = User


def may_see_user(info: Info, user_id: int) -> bool:
    """A customer sees only themself; operators and admins see anybody (analysts see no personal data)."""
    found = viewer(info)
    return found is not None and (found.user_id == user_id or found.role in ("OPERATOR", "ADMIN"))


async def me(info: Info) -> User | None:
    """The caller's user row; None when anonymous or the cabinet was deleted."""
    found = viewer(info)
    if found is None:
        return None
    user: User | None = await info.context.loader(UserById).load(found.user_id)
    return user if user is not None and user.deleted_at is None else None


async def users_by_ids(info: Info, ids: list[int]) -> list[User | None]:
    """Users by id, None where missing or not visible to the caller."""
    rows = await info.context.loader(UserById).load_many(ids)
    return [row if row is not None and may_see_user(info, row.id) else None for row in rows]


# --- identity flows (A1–A9, J1–J10) -------------------------------------------------------------------------


def caller_of(info: Info) -> common.Caller:
    """The request as the identity service sees it."""
    context = info.context
    return common.Caller(
        now=context.now,
        client_ip=context.client_ip,
        user_agent=context.user_agent,
        secret=context.settings.secret_key,
        counters=counters_of(context.state),
        policy_version=context.settings.personal_data_policy_version,
    )


ATTEMPTS_COUNT = (DomainError,)
"""Identity writes commit after a domain error too: wrong code and password tries must count."""


async def _flag(info: Info, ended: list[int]) -> None:
    await sessions.flag_revoked(counters_of(info.context.state), ended)


async def _start(info: Info, session: Any, user: User, client: ClientKind, device_name: str | None) -> Tokens:
    return await sessions.start_session(
        session,
        info.context.settings.secret_key,
        user,
        now=info.context.now,
        client_kind=client,
        device_name=device_name,
        client_ip=info.context.client_ip,
        user_agent=info.context.user_agent,
    )


async def _login(
    info: Info,
    authenticate: Callable[[Any, common.Caller], Awaitable[User]],
    client: ClientKind,
    device: str | None,
) -> tuple[Tokens, User]:
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        user = await authenticate(session, caller_of(info))
        tokens = await _start(info, session, user, client, device)
    info.context.loader(UserById).prime(user.id, user)
    return tokens, user


async def start_registration(info: Info, form: registration.Registration) -> SentCode:
    """A1 step 1."""
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        return await registration.start_registration(session, caller_of(info), form)


async def register(
    info: Info, phone: str, code: str, client: ClientKind, device: str | None
) -> tuple[Tokens, User]:
    """A1 step 2: creates the cabinet and logs in."""
    return await _login(
        info, lambda s, c: registration.complete_registration(s, c, phone, code), client, device
    )


async def login_with_password(
    info: Info, login: str, password: str, client: ClientKind, device: str | None
) -> tuple[Tokens, User]:
    """A3."""
    return await _login(info, lambda s, c: logins.login_with_password(s, c, login, password), client, device)


async def request_code(info: Info, login: str, purpose: CodePurpose) -> SentCode:
    """A4 / A8: a code to an existing cabinet's phone or confirmed e-mail."""
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        return await logins.request_code(session, caller_of(info), login, purpose)


async def login_with_code(
    info: Info, login: str, code: str, client: ClientKind, device: str | None
) -> tuple[Tokens, User]:
    """A4."""
    return await _login(info, lambda s, c: logins.login_with_code(s, c, login, code), client, device)


async def reset_password(info: Info, login: str, code: str, password: str, repeat: str) -> None:
    """A8."""
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        _, ended = await logins.reset_password(session, caller_of(info), login, code, password, repeat)
    await _flag(info, ended)


async def refresh(info: Info, refresh_token: str) -> tuple[Tokens, User]:
    """Rotate a refresh token; a reused one ends its session at once."""
    try:
        async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
            session = uow.session
            tokens = await sessions.refresh_session(
                session, info.context.settings.secret_key, refresh_token, now=info.context.now
            )
            auth = await session.get(AuthSession, tokens.session_id)
            user = None if auth is None else await session.get(User, auth.user_id)
    except sessions.InvalidRefreshToken as error:
        await _flag(info, error.data.get("revoked", []))
        raise
    if user is None:  # the session was refreshed, but its user went meanwhile
        raise sessions.InvalidRefreshToken()
    return tokens, user


async def logout(info: Info) -> int:
    """A9: end the caller's session."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        ended = await sessions.revoke_sessions(
            session, viewer.user_id, now=info.context.now, only=viewer.session_id
        )
    await _flag(info, ended)
    return len(ended)


async def active_sessions(info: Info) -> list[AuthSession]:
    """The caller's sessions."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        return await sessions.active_sessions(session, viewer.user_id, now=info.context.now)


async def sessions_by_ids(info: Info, ids: list[int]) -> list[AuthSession | None]:
    """Sessions by id, only the caller's own."""
    viewer = info.context.viewer
    if viewer is None:
        return [None for _ in ids]
    found = {row.id: row for row in await active_sessions(info)}
    return [found.get(key) for key in ids]


async def end_sessions(info: Info, *, only: int | None = None, others: bool = False) -> int:
    """End one of the caller's sessions, or all but the current one."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        ended = await sessions.revoke_sessions(
            session,
            viewer.user_id,
            now=info.context.now,
            only=only,
            keep=viewer.session_id if others else None,
        )
    await _flag(info, ended)
    return len(ended)


async def _profile(info: Info, change: Callable[[Any, common.Caller, int], Awaitable[Any]]) -> Any:
    viewer = require_viewer(info)
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        result = await change(session, caller_of(info), viewer.user_id)
    if isinstance(result, User):
        info.context.loader(UserById).prime(result.id, result)
    return result


async def send_email_confirmation(info: Info) -> SentCode:
    """A2: a code to the caller's unconfirmed e-mail."""

    async def run(session: Any, caller: common.Caller, user_id: int) -> SentCode:
        return await registration.send_email_confirmation(
            session, caller, await common.live_user(session, user_id)
        )

    return await _profile(info, run)


async def confirm_email(info: Info, code: str) -> User:
    """A2."""
    return await _profile(info, lambda s, c, u: registration.confirm_email(s, c, u, code))


async def update_names(info: Info, last: str, first: str, middle: str | None) -> User:
    """J1."""
    return await _profile(info, lambda s, c, u: profile.update_names(s, c, u, last, first, middle))


async def request_phone_change(info: Info, phone: str) -> SentCode:
    """J2 step 1."""
    return await _profile(info, lambda s, c, u: profile.request_phone_change(s, c, u, phone))


async def confirm_phone_change(info: Info, phone: str, code: str) -> User:
    """J2 step 2."""
    return await _profile(info, lambda s, c, u: profile.confirm_phone_change(s, c, u, phone, code))


async def request_email_change(info: Info, email: str) -> SentCode:
    """J3 step 1."""
    return await _profile(info, lambda s, c, u: profile.request_email_change(s, c, u, email))


async def confirm_email_change(info: Info, email: str, code: str) -> User:
    """J3 step 2."""
    return await _profile(info, lambda s, c, u: profile.confirm_email_change(s, c, u, email, code))


async def change_password(info: Info, current: str, password: str, repeat: str) -> User:
    """J4: the other sessions end."""
    viewer = require_viewer(info)
    user, ended = await _profile(
        info,
        lambda s, c, u: profile.change_password(s, c, u, viewer.session_id, current, password, repeat),
    )
    info.context.loader(UserById).prime(user.id, user)
    await _flag(info, ended)
    return user


async def set_show_hints(info: Info, show: bool) -> User:
    """J9."""
    return await _profile(info, lambda s, c, u: profile.set_show_hints(s, c, u, show))


async def delete_cabinet(info: Info, password: str | None, choices: list[profile.ReceiptChoice]) -> None:
    """J10."""
    ended = await _profile(info, lambda s, c, u: profile.delete_cabinet(s, c, u, password, choices))
    await _flag(info, ended)


# --- A6 QR login -------------------------------------------------------------------------------------------

QR_RECHECK_SECONDS = 2.0
"""The subscription re-reads the challenge at least this often (covers an event sent before it listened)."""


async def start_qr_login(info: Info) -> qr.QrStarted:
    """A6: the web client's challenge."""
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        return await qr.start_qr_login(session, caller_of(info))


async def qr_login_request(info: Info, qr_payload: str) -> QrLoginChallenge:
    """A6: what the mobile app shows before approving."""
    require_viewer(info)
    async with info.context.session() as session:
        return await qr.qr_challenge(session, caller_of(info), qr_payload)


async def decide_qr_login(info: Info, qr_payload: str, approve: bool) -> None:
    """A6: approve or reject; the waiting web client hears it at once."""
    viewer = require_viewer(info)
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        row = await qr.decide_qr_login(session, caller_of(info), viewer.user_id, qr_payload, approve)
        challenge_id, status = row.id, row.status.value
    await info.context.state.bus.publish(f"qr-login:{challenge_id}", {"status": status})


async def qr_login_events(
    info: Info, web_secret: str
) -> AsyncIterator[tuple[str, Tokens | None, dt.datetime | None]]:
    """A6: (status, tokens, expires_at): PENDING first, then the outcome; tokens come only once."""
    context = info.context
    await context.new_event_scope()
    async with context.session() as session:
        row = await qr.qr_challenge_for_web(session, caller_of(info), web_secret)
    if row is None:
        yield QrLoginStatus.EXPIRED.value, None, None
        return
    challenge_id, expires_at = row.id, row.expires_at
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def pump() -> None:
        async for message in context.state.bus.listen(f"qr-login:{challenge_id}"):
            await queue.put(message)

    task = asyncio.create_task(pump())
    try:
        announced = False
        while True:
            await context.new_event_scope()
            caller = caller_of(info)
            async with context.unit_of_work() as uow:
                session = uow.session
                current = await session.get(QrLoginChallenge, challenge_id)
                assert current is not None
                status = current.status
                if status is QrLoginStatus.PENDING and current.expires_at <= caller.now:
                    status = QrLoginStatus.EXPIRED
                tokens = None
                if status is QrLoginStatus.APPROVED:
                    user = await qr.consume_qr_login(session, caller, challenge_id)
                    if user is None:
                        status = QrLoginStatus.CONSUMED
                    else:
                        tokens = await sessions.start_session(
                            session,
                            context.settings.secret_key,
                            user,
                            now=caller.now,
                            client_kind=ClientKind.WEB,
                            client_ip=str(current.web_client_ip)
                            if current.web_client_ip
                            else context.client_ip,
                            user_agent=current.web_user_agent or context.user_agent,
                        )
                        current.session_id = tokens.session_id
            if status is QrLoginStatus.PENDING:
                if not announced:
                    announced = True
                    yield status.value, None, expires_at
                remaining = (expires_at - caller_of(info).now).total_seconds()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), timeout=max(0.05, min(QR_RECHECK_SECONDS, remaining)))
                continue
            yield (QrLoginStatus.APPROVED.value if tokens else status.value), tokens, expires_at
            return
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# --- A7 device keys -----------------------------------------------------------------------------------------


async def register_device_key(info: Info, public_key: str, name: str | None) -> DeviceCredential:
    """A7: register the device's public key (logged in)."""
    return await _profile(info, lambda s, c, u: keys.register_device_key(s, c, u, public_key, name))


def device_challenge(info: Info, credential_id: str) -> tuple[str, dt.datetime]:
    """A7: a challenge to sign."""
    return keys.device_challenge(caller_of(info), credential_id)


async def login_with_device_key(
    info: Info, credential_id: str, challenge: str, signature: str, device: str | None
) -> tuple[Tokens, User]:
    """A7: log in with the device's signature."""
    return await _login(
        info,
        lambda s, c: keys.login_with_device_key(s, c, credential_id, challenge, signature),
        ClientKind.MOBILE,
        device,
    )


async def device_keys(info: Info) -> list[DeviceCredential]:
    """A7: the caller's device keys."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        return await keys.device_keys(session, viewer.user_id)


async def device_keys_by_ids(info: Info, ids: list[int]) -> list[DeviceCredential | None]:
    """Device keys by id, only the caller's own."""
    if info.context.viewer is None:
        return [None for _ in ids]
    found = {row.id: row for row in await device_keys(info)}
    return [found.get(key) for key in ids]


async def revoke_device_key(info: Info, key_id: int) -> bool:
    """A7: revoke one of the caller's device keys."""
    return await _profile(info, lambda s, c, u: keys.revoke_device_key(s, c, u, key_id))


# --- A5 VK and J8 ---------------------------------------------------------------------------------------


def vk_settings(info: Info) -> vk.VkSettings:
    """VK endpoints from the settings."""
    settings = info.context.settings
    return vk.VkSettings(
        client_id=settings.vk_client_id,
        client_secret=settings.vk_client_secret,
        authorize_url=settings.vk_authorize_url,
        token_url=settings.vk_token_url,
        userinfo_url=settings.vk_userinfo_url,
    )


async def start_vk_login(info: Info, redirect_uri: str) -> tuple[str, str]:
    """A5 step 1 (anonymous: a login) or J8 step 1 (logged in: connecting VK to the caller's cabinet)."""
    found = viewer(info)
    async with info.context.unit_of_work(commit_on=ATTEMPTS_COUNT) as uow:
        session = uow.session
        return await vk.start_vk_login(
            session,
            caller_of(info),
            vk_settings(info),
            redirect_uri,
            viewer_user_id=found.user_id if found is not None else None,
        )


async def complete_vk_login(
    info: Info,
    code: str,
    state: str,
    redirect_uri: str,
    consent: bool,
    client: ClientKind,
    device: str | None,
) -> tuple[Tokens, User]:
    """A5 step 2: tokens for the VK user (registering them with consent when new)."""

    async def run(session: Any, caller: common.Caller) -> User:
        return await vk.complete_vk_login(
            session,
            caller,
            vk_settings(info),
            code=code,
            state=state,
            redirect_uri=redirect_uri,
            consent=consent,
            viewer_user_id=None,
        )

    return await _login(info, run, client, device)


async def connect_vk(info: Info, code: str, state: str, redirect_uri: str) -> User:
    """J8: connect VK to the logged-in cabinet."""

    async def run(session: Any, caller: common.Caller, user_id: int) -> User:
        return await vk.complete_vk_login(
            session,
            caller,
            vk_settings(info),
            code=code,
            state=state,
            redirect_uri=redirect_uri,
            consent=False,
            viewer_user_id=user_id,
        )

    return await _profile(info, run)


async def login_services(info: Info) -> list[ExternalIdentity]:
    """J8: the caller's connected login services."""
    viewer = require_viewer(info)
    async with info.context.session() as session:
        return await vk.login_services(session, viewer.user_id)


async def login_services_by_ids(info: Info, ids: list[int]) -> list[ExternalIdentity | None]:
    """Connected services by id, only the caller's own."""
    if info.context.viewer is None:
        return [None for _ in ids]
    found = {row.id: row for row in await login_services(info)}
    return [found.get(key) for key in ids]


async def unlink_login_service(info: Info, identity_id: int) -> bool:
    """J8: disconnect one."""
    return await _profile(info, lambda s, c, u: vk.unlink_login_service(s, c, u, identity_id))
