"""Users and roles (A, J)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Iterable
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay

from models import identity as models
from models.identity import AuthSession, CodePurpose, DeviceCredential, ExternalIdentity, QrLoginChallenge
from models.identity import ClientKind as ClientKindModel
from resolvers import identity as resolvers
from resolvers.context import Info
from schema import rules
from schema.errors import error_code_enum, error_domain
from schema.node import as_node, backed_by, canonical
from services import codes as codes_service
from services.codes import SentCode
from services.errors import DomainError
from services.errors import NotFound as NotFoundError
from services.identity import device_keys as identity_device_keys
from services.identity import errors as identity_errors
from services.identity import profile as identity_profile
from services.identity import registration as identity_registration
from services.sessions import Tokens

IdentityErrorCode = error_code_enum(
    "IdentityErrorCode",
    "Why an identity mutation (login, profile, devices: A1–A10, J8) failed: the `code` of `IdentityError`.",
    "services.identity.errors",
    "services.identity.device_keys",
    "services.identity.qr",
    "services.identity.vk",
    "services.codes",
    "services.sessions",
)


@strawberry.interface(
    description=(
        "A problem with an identity mutation (login, profile, devices: A1–A10, J8), "
        "reported in its payload's `userErrors`. "
        "`code` (`IdentityErrorCode`) is stable for programs, `message` is the text to show the user "
        "(Russian), `field` is the path of the input it concerns."
    )
)
class IdentityError:
    """Common shape of this domain's user errors; specific ones implement it and carry more data."""

    code: str = strawberry.field(
        graphql_type=IdentityErrorCode,
        description="Stable machine-readable code, one of `IdentityErrorCode`.",
    )
    message: str = strawberry.field(description="Human-readable text to show the user, in Russian.")
    field: list[str] | None = strawberry.field(
        description='Path of the input field at fault, e.g. `["input", "phone"]`; null for the whole input.'
    )


@strawberry.type(description="An `IdentityError` with no data beyond code, message and field.")
class IdentityInputError(IdentityError):
    """The default implementation of :class:`IdentityError`."""


IDENTITY_ERRORS = error_domain(IdentityError, IdentityErrorCode, IdentityInputError)
user_error = IDENTITY_ERRORS.one
user_errors = IDENTITY_ERRORS.many


@strawberry.enum(description="What a user may do.")
class Role(Enum):
    """Roles of Kabinet users."""

    CUSTOMER = strawberry.enum_value(
        "CUSTOMER", description="A customer: sees and manages their linked accounts."
    )
    OPERATOR = strawberry.enum_value(
        "OPERATOR", description="Company operator: works with appeals and applications."
    )
    ANALYST = strawberry.enum_value(
        "ANALYST", description="Analyst: reads aggregated data, explores in GraphiQL."
    )
    ADMIN = strawberry.enum_value("ADMIN", description="Administrator: manages content and staff.")


@strawberry.type(description="A user of the cabinet: a customer or a member of staff.")
class User(relay.Node):
    """The person behind a login. Backed by ``models.identity.User`` rows."""

    is_type_of = backed_by(models.User)

    id: relay.NodeID[int]
    phone: str = strawberry.field(description="Phone number in E.164, e.g. `+71111111111`.")
    email: str | None = strawberry.field(
        description="E-mail address, confirmed or not (see `emailConfirmed`)."
    )
    last_name: str = strawberry.field(description="Last name (фамилия).")
    first_name: str = strawberry.field(description="First name (имя).")
    middle_name: str | None = strawberry.field(description="Middle name (отчество); null until set.")
    show_hints: bool = strawberry.field(description="Whether the front end shows hints (J9).")

    @strawberry.field(
        description="Whether the e-mail address is confirmed (A2); only a confirmed one logs in."
    )
    def email_confirmed(self, root: strawberry.Parent[models.User]) -> bool:
        return root.email_confirmed_at is not None

    @strawberry.field(description="Full name: last, first and middle name.")
    def full_name(self, root: strawberry.Parent[models.User]) -> str:
        return " ".join(part for part in (root.last_name, root.first_name, root.middle_name) if part)

    @strawberry.field(description="The user's role.")
    def role(self, root: strawberry.Parent[models.User]) -> Role:
        return Role(root.role.value)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        """A customer may fetch only themself; operators and admins anybody."""
        return as_node(cls, await resolvers.users_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.type
class IdentityQueries:
    """Queries of this module (merged into Query)."""

    @strawberry.field(description="The logged-in user; null when the request carries no access token.")
    async def me(self, info: Info) -> User | None:
        return await resolvers.me(info)  # type: ignore[return-value]

    @strawberry.field(description="The caller's active login sessions, most recently used first.")
    async def sessions(self, info: Info) -> list[LoginSession]:
        return await resolvers.active_sessions(info)  # type: ignore[return-value]

    @strawberry.field(description="A7: the caller's registered device keys (biometric login).")
    async def device_keys(self, info: Info) -> list[DeviceKey]:
        return await resolvers.device_keys(info)  # type: ignore[return-value]

    @strawberry.field(
        description="A6: what a scanned QR code asks the logged-in mobile app to approve; null if invalid."
    )
    async def qr_login_request(
        self,
        info: Info,
        qr_payload: Annotated[str, strawberry.argument(description="The text read from the QR code.")],
    ) -> QrLoginRequest | None:
        try:
            row = await resolvers.qr_login_request(info, qr_payload)
        except DomainError:
            return None
        return QrLoginRequest.of(row)


# --- identity flows ---------------------------------------------------------------------------------------


@strawberry.type(description="A wrong verification code; the code is void when `attemptsLeft` reaches 0.")
class WrongCodeError(IdentityError):
    """CODE_INVALID with the number of tries left."""

    attempts_left: int = strawberry.field(description="Wrong tries left before the code is void.")


@strawberry.type(description="Too soon or too many attempts: try again after `retryAfterSeconds`.")
class RetryLaterError(IdentityError):
    """RATE_LIMITED / CODE_RESEND_TOO_SOON."""

    retry_after_seconds: int = strawberry.field(description="Seconds until the next attempt is accepted.")


@IDENTITY_ERRORS.register(codes_service.WrongCode)
def _wrong_code(error: DomainError, code: Any) -> IdentityError:
    return WrongCodeError(
        code=code,
        message=error.text,
        field=error.field,
        attempts_left=int(error.data.get("attempts_left", 0)),
    )


@IDENTITY_ERRORS.register(codes_service.RetryLater)
def _retry_later(error: DomainError, code: Any) -> IdentityError:
    return RetryLaterError(
        code=code,
        message=error.text,
        field=error.field,
        retry_after_seconds=int(error.data.get("retry_after_seconds", 60)),
    )


ERROR_TYPES: list[type] = [WrongCodeError, RetryLaterError]


def errors_of(error: DomainError) -> list[IdentityError]:
    """Every user error a domain error stands for (validation reports each bad field)."""
    if isinstance(error, identity_errors.InvalidInput):
        return user_errors(error.errors)
    return [user_error(error)]


@strawberry.enum(description="The front end a session belongs to.")
class ClientKind(Enum):
    """Web or mobile client."""

    WEB = strawberry.enum_value("WEB", description="The web cabinet in a browser.")
    MOBILE = strawberry.enum_value("MOBILE", description="The mobile app.")


@strawberry.enum(description="How a verification code is delivered.")
class CodeChannel(Enum):
    """SMS or e-mail."""

    SMS = strawberry.enum_value("SMS", description="By SMS to a phone.")
    EMAIL = strawberry.enum_value("EMAIL", description="By e-mail.")


@strawberry.type(description="A verification code was sent; the code itself only travels by SMS or e-mail.")
class CodeSent:
    """Where and until when."""

    channel: CodeChannel = strawberry.field(description="SMS or e-mail.")
    destination: str = strawberry.field(description="The phone (E.164) or e-mail address the code went to.")
    expires_at: dt.datetime = strawberry.field(description="The code is valid until then (5 minutes).")
    resend_after: dt.datetime = strawberry.field(description="A new code may be requested after this moment.")

    @classmethod
    def of(cls, sent: SentCode) -> CodeSent:
        return cls(
            channel=CodeChannel(sent.channel.value),
            destination=sent.destination,
            expires_at=sent.expires_at,
            resend_after=sent.resend_after,
        )


@strawberry.type(description="The result of asking for a verification code.")
class CodeRequestPayload:
    """A sent code or why not."""

    code_sent: CodeSent | None = strawberry.field(description="Where the code went; null on error.")
    user_errors: list[IdentityError] = strawberry.field(description="Why no code was sent.")


@strawberry.type(description="Tokens of a login session. Send `accessToken` as `Authorization: Bearer …`.")
class AuthTokens:
    """Access token (short-lived, signed) and refresh token (opaque, rotated on every use)."""

    access_token: str = strawberry.field(description="Signed access token (about 15 minutes).")
    access_token_expires_at: dt.datetime = strawberry.field(description="When the access token expires.")
    refresh_token: str = strawberry.field(
        description="Opaque refresh token for `refreshTokens`; single use: each refresh returns a new one."
    )
    refresh_token_expires_at: dt.datetime = strawberry.field(
        description="End of the session's absolute lifetime (then log in again)."
    )

    @classmethod
    def of(cls, tokens: Tokens) -> AuthTokens:
        return cls(
            access_token=tokens.access_token,
            access_token_expires_at=tokens.access_token_expires_at,
            refresh_token=tokens.refresh_token,
            refresh_token_expires_at=tokens.refresh_token_expires_at,
        )


@strawberry.type(description="The result of a login, registration or token refresh.")
class LoginPayload:
    """Tokens and the user, or why not."""

    tokens: AuthTokens | None = strawberry.field(description="The new tokens; null on error.")
    user: User | None = strawberry.field(description="The logged-in user; null on error.")
    user_errors: list[IdentityError] = strawberry.field(description="Why the login failed.")


@strawberry.type(description="The result of a profile change.")
class UserPayload:
    """The user after the change, or why not."""

    user: User | None = strawberry.field(description="The user after the change; null on error.")
    user_errors: list[IdentityError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="The result of an operation that only succeeds or fails.")
class DonePayload:
    """Success flag and errors."""

    ok: bool = strawberry.field(description="True when done.")
    user_errors: list[IdentityError] = strawberry.field(description="Why not.")


@strawberry.type(description="The result of ending sessions.")
class EndSessionsPayload:
    """How many sessions ended."""

    ended_count: int = strawberry.field(description="Sessions ended by this call.")
    user_errors: list[IdentityError] = strawberry.field(description="Why not.")


@strawberry.type(description="A login session on one device (A9): what the user sees in the session list.")
class LoginSession(relay.Node):
    """Backed by ``models.identity.AuthSession``."""

    is_type_of = backed_by(AuthSession)

    id: relay.NodeID[int]
    device_name: str | None = strawberry.field(description="Device name the client gave at login.")
    user_agent: str | None = strawberry.field(description="The client's user agent.")
    created_at: dt.datetime = strawberry.field(description="When the user logged in.")
    last_used_at: dt.datetime = strawberry.field(description="Last token refresh.")
    expires_at: dt.datetime = strawberry.field(description="End of the absolute lifetime.")

    @strawberry.field(description="Web or mobile client.")
    def client(self, root: strawberry.Parent[AuthSession]) -> ClientKind:
        return ClientKind(root.client_kind.value)

    @strawberry.field(description="Client address at login.")
    def client_ip(self, root: strawberry.Parent[AuthSession]) -> str | None:
        return str(root.client_ip) if root.client_ip is not None else None

    @strawberry.field(description="True for the session of this request.")
    def current(self, root: strawberry.Parent[AuthSession], info: Info) -> bool:
        found = info.context.viewer
        return found is not None and found.session_id == root.id

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[LoginSession | None]:
        """Only the caller's own active sessions."""
        return as_node(cls, await resolvers.sessions_by_ids(info, [int(node_id) for node_id in node_ids]))


def _client(value: ClientKind | None) -> ClientKindModel:
    return ClientKindModel(value.name) if value is not None else ClientKindModel.WEB


@strawberry.input(
    description="A1 registration form (step 1): every field is checked, then a code goes by SMS."
)
class StartRegistrationInput:
    """The A1 form."""

    phone: str = strawberry.field(description="Phone in any common form, e.g. `+7 (111) 111-11-11`.")
    email: str = strawberry.field(description="E-mail address (confirmed later with a code, A2).")
    last_name: str = strawberry.field(description="Last name: up to 50 Russian/Latin letters, `-`, `—`.")
    first_name: str = strawberry.field(description="First name, same rules.")
    middle_name: str | None = strawberry.field(
        default=None, description="Middle name (optional), same rules."
    )
    password: str = strawberry.field(
        description="6+ characters: Latin upper and lower case, a digit and a special character (!, $, #, %)."
    )
    password_repeat: str = strawberry.field(description="The password again.")
    consent: bool = strawberry.field(description="Consent to the personal-data policy (must be true).")


@strawberry.input(description="A1 step 2: the SMS code finishes the registration.")
class RegisterInput:
    """Phone and code."""

    phone: str = strawberry.field(description="The phone given in step 1.")
    code: str = strawberry.field(description="The 6-digit code from the SMS.")
    client: ClientKind | None = strawberry.field(default=None, description="Web (default) or mobile.")
    device_name: str | None = rules.field("Name of the device, for the session list.", rules.DEVICE_NAME)


@strawberry.input(description="A3: phone (any form) or confirmed e-mail, and the password.")
class LoginWithPasswordInput:
    """Credentials."""

    login: str = strawberry.field(description="Phone or confirmed e-mail.")
    password: str = strawberry.field(description="The password.")
    client: ClientKind | None = strawberry.field(default=None, description="Web (default) or mobile.")
    device_name: str | None = rules.field("Name of the device, for the session list.", rules.DEVICE_NAME)


@strawberry.input(description="A4 / A8: where to send a code: a registered phone or confirmed e-mail.")
class RequestCodeInput:
    """The login."""

    login: str = strawberry.field(description="Phone (any form) or confirmed e-mail.")


@strawberry.input(description="A4: log in with the code.")
class LoginWithCodeInput:
    """Login and code."""

    login: str = strawberry.field(description="The phone or e-mail the code was sent to.")
    code: str = strawberry.field(description="The 6-digit code.")
    client: ClientKind | None = strawberry.field(default=None, description="Web (default) or mobile.")
    device_name: str | None = rules.field("Name of the device, for the session list.", rules.DEVICE_NAME)


@strawberry.input(description="A8: the code and the new password; every session ends.")
class ResetPasswordInput:
    """Login, code and new password."""

    login: str = strawberry.field(description="The phone or e-mail the code was sent to.")
    code: str = strawberry.field(description="The 6-digit code.")
    password: str = strawberry.field(description="New password (A1 rules).")
    password_repeat: str = strawberry.field(description="The new password again.")


@strawberry.input(description="A refresh token to rotate.")
class RefreshTokensInput:
    """The refresh token."""

    refresh_token: str = strawberry.field(description="The latest refresh token of the session.")


@strawberry.input(description="One of the caller's sessions to end.")
class EndSessionInput:
    """The session."""

    session_id: relay.GlobalID = strawberry.field(description="ID of a `LoginSession`.")


@strawberry.input(description="A2: the code sent to the e-mail address.")
class ConfirmEmailInput:
    """The code."""

    code: str = strawberry.field(description="The 6-digit code.")


@strawberry.input(description="J1: names (A1 rules); an empty middle name clears it.")
class UpdatePersonalDataInput:
    """Names."""

    last_name: str = strawberry.field(description="Last name.")
    first_name: str = strawberry.field(description="First name.")
    middle_name: str | None = strawberry.field(
        default=None, description="Middle name; null or empty clears it."
    )


@strawberry.input(description="J2: the new phone number.")
class RequestPhoneChangeInput:
    """New phone."""

    phone: str = strawberry.field(description="New phone in any common form.")


@strawberry.input(description="J2: the new phone and the code sent to it.")
class ConfirmPhoneChangeInput:
    """New phone and code."""

    phone: str = strawberry.field(description="The new phone.")
    code: str = strawberry.field(description="The 6-digit code from the SMS.")


@strawberry.input(description="J3: the new e-mail address.")
class RequestEmailChangeInput:
    """New e-mail."""

    email: str = strawberry.field(description="New e-mail address.")


@strawberry.input(description="J3: the new e-mail and the code sent to it.")
class ConfirmEmailChangeInput:
    """New e-mail and code."""

    email: str = strawberry.field(description="The new e-mail address.")
    code: str = strawberry.field(description="The 6-digit code.")


@strawberry.input(description="J4: current, new and repeated password; other sessions end.")
class ChangePasswordInput:
    """Passwords."""

    current_password: str = strawberry.field(description="The current password.")
    password: str = strawberry.field(description="New password (A1 rules).")
    password_repeat: str = strawberry.field(description="The new password again.")


@strawberry.input(description="J9: show hints or not.")
class SetShowHintsInput:
    """The switch."""

    show_hints: bool = strawberry.field(description="True to show hints.")


@strawberry.input(description="J10: how receipts of one linked account go on after the cabinet is deleted.")
class ReceiptAfterDeletionInput:
    """Electronic to an e-mail, or paper to a postal address."""

    account_id: relay.GlobalID = strawberry.field(description="The linked account.")
    electronic: bool = strawberry.field(
        description="True: e-receipts to `email`; false: paper to `postalAddress`."
    )
    email: str | None = strawberry.field(default=None, description="E-mail for electronic receipts.")
    postal_address: str | None = strawberry.field(default=None, description="Address for paper receipts.")


@strawberry.input(description="J10: delete the cabinet.")
class DeleteCabinetInput:
    """Password and a receipt choice per linked account."""

    password: str | None = strawberry.field(
        default=None, description="The password (for users that have one)."
    )
    receipts: list[ReceiptAfterDeletionInput] = strawberry.field(
        default_factory=list, description="One choice per linked account (see `accounts`)."
    )


async def _code(run: Any) -> CodeRequestPayload:
    try:
        sent = await run
    except DomainError as error:
        return CodeRequestPayload(code_sent=None, user_errors=errors_of(error))
    return CodeRequestPayload(code_sent=CodeSent.of(sent), user_errors=[])


async def _login(run: Any) -> LoginPayload:
    try:
        tokens, user = await run
    except DomainError as error:
        return LoginPayload(tokens=None, user=None, user_errors=errors_of(error))
    return LoginPayload(tokens=AuthTokens.of(tokens), user=user, user_errors=[])


async def _user(run: Any) -> UserPayload:
    try:
        user = await run
    except DomainError as error:
        return UserPayload(user=None, user_errors=errors_of(error))
    return UserPayload(user=user, user_errors=[])


@strawberry.type
class IdentityMutations:
    """Mutations of this module (merged into Mutation)."""

    @strawberry.mutation(description="A1 step 1: check the registration form and send a code by SMS.")
    async def start_registration(
        self,
        info: Info,
        input: Annotated[StartRegistrationInput, strawberry.argument(description="The form.")],
    ) -> CodeRequestPayload:
        form = identity_registration.Registration(
            phone=input.phone,
            email=input.email,
            last_name=input.last_name,
            first_name=input.first_name,
            middle_name=input.middle_name,
            password=input.password,
            password_repeat=input.password_repeat,
            consent=input.consent,
        )
        return await _code(resolvers.start_registration(info, form))

    @strawberry.mutation(
        description="A1 step 2: the SMS code creates the cabinet and logs in; an A2 code goes to the e-mail."
    )
    async def register(
        self,
        info: Info,
        input: Annotated[RegisterInput, strawberry.argument(description="Phone and code.")],
    ) -> LoginPayload:
        return await _login(
            resolvers.register(info, input.phone, input.code, _client(input.client), input.device_name)
        )

    @strawberry.mutation(description="A2: send a code to the caller's unconfirmed e-mail.")
    async def request_email_confirmation(self, info: Info) -> CodeRequestPayload:
        return await _code(resolvers.send_email_confirmation(info))

    @strawberry.mutation(description="A2: confirm the e-mail with the code.")
    async def confirm_email(
        self,
        info: Info,
        input: Annotated[ConfirmEmailInput, strawberry.argument(description="The code.")],
    ) -> UserPayload:
        return await _user(resolvers.confirm_email(info, input.code))

    @strawberry.mutation(description="A3: log in by phone or confirmed e-mail and password.")
    async def login_with_password(
        self,
        info: Info,
        input: Annotated[LoginWithPasswordInput, strawberry.argument(description="Credentials.")],
    ) -> LoginPayload:
        return await _login(
            resolvers.login_with_password(
                info, input.login, input.password, _client(input.client), input.device_name
            )
        )

    @strawberry.mutation(description="A4: send a login code to a registered phone or confirmed e-mail.")
    async def request_login_code(
        self,
        info: Info,
        input: Annotated[RequestCodeInput, strawberry.argument(description="The login.")],
    ) -> CodeRequestPayload:
        return await _code(resolvers.request_code(info, input.login, CodePurpose.LOGIN))

    @strawberry.mutation(description="A4: log in with the code.")
    async def login_with_code(
        self,
        info: Info,
        input: Annotated[LoginWithCodeInput, strawberry.argument(description="Login and code.")],
    ) -> LoginPayload:
        return await _login(
            resolvers.login_with_code(info, input.login, input.code, _client(input.client), input.device_name)
        )

    @strawberry.mutation(
        description="A8: send a password-recovery code to a registered phone or confirmed e-mail."
    )
    async def request_password_reset(
        self,
        info: Info,
        input: Annotated[RequestCodeInput, strawberry.argument(description="The login.")],
    ) -> CodeRequestPayload:
        return await _code(resolvers.request_code(info, input.login, CodePurpose.PASSWORD_RESET))

    @strawberry.mutation(description="A8: set a new password with the code; every session ends.")
    async def reset_password(
        self,
        info: Info,
        input: Annotated[ResetPasswordInput, strawberry.argument(description="Code and password.")],
    ) -> DonePayload:
        try:
            await resolvers.reset_password(
                info, input.login, input.code, input.password, input.password_repeat
            )
        except DomainError as error:
            return DonePayload(ok=False, user_errors=errors_of(error))
        return DonePayload(ok=True, user_errors=[])

    @strawberry.mutation(description="Rotate the refresh token; a reused one ends the whole session.")
    async def refresh_tokens(
        self,
        info: Info,
        input: Annotated[RefreshTokensInput, strawberry.argument(description="The token.")],
    ) -> LoginPayload:
        return await _login(resolvers.refresh(info, input.refresh_token))

    @strawberry.mutation(description="A9: log out: the caller's session ends and its tokens stop working.")
    async def logout(self, info: Info) -> DonePayload:
        await resolvers.logout(info)
        return DonePayload(ok=True, user_errors=[])

    @strawberry.mutation(description="End one of the caller's sessions (see `sessions`).")
    async def end_session(
        self,
        info: Info,
        input: Annotated[EndSessionInput, strawberry.argument(description="The session.")],
    ) -> EndSessionsPayload:
        if input.session_id.type_name != "LoginSession":
            return EndSessionsPayload(
                ended_count=0, user_errors=[user_error(NotFoundError(field=["input", "sessionId"]))]
            )
        count = await resolvers.end_sessions(info, only=int(canonical(input.session_id).node_id))
        if not count:
            return EndSessionsPayload(
                ended_count=0, user_errors=[user_error(NotFoundError(field=["input", "sessionId"]))]
            )
        return EndSessionsPayload(ended_count=count, user_errors=[])

    @strawberry.mutation(description="End every session of the caller except the current one.")
    async def end_other_sessions(self, info: Info) -> EndSessionsPayload:
        return EndSessionsPayload(ended_count=await resolvers.end_sessions(info, others=True), user_errors=[])

    @strawberry.mutation(description="J1: change last, first and middle name.")
    async def update_personal_data(
        self,
        info: Info,
        input: Annotated[UpdatePersonalDataInput, strawberry.argument(description="Names.")],
    ) -> UserPayload:
        return await _user(resolvers.update_names(info, input.last_name, input.first_name, input.middle_name))

    @strawberry.mutation(description="J2: send a code to the new phone.")
    async def request_phone_change(
        self,
        info: Info,
        input: Annotated[RequestPhoneChangeInput, strawberry.argument(description="New phone.")],
    ) -> CodeRequestPayload:
        return await _code(resolvers.request_phone_change(info, input.phone))

    @strawberry.mutation(description="J2: switch to the new phone with its code.")
    async def confirm_phone_change(
        self,
        info: Info,
        input: Annotated[ConfirmPhoneChangeInput, strawberry.argument(description="Phone and code.")],
    ) -> UserPayload:
        return await _user(resolvers.confirm_phone_change(info, input.phone, input.code))

    @strawberry.mutation(description="J3: send a code to the new e-mail.")
    async def request_email_change(
        self,
        info: Info,
        input: Annotated[RequestEmailChangeInput, strawberry.argument(description="New e-mail.")],
    ) -> CodeRequestPayload:
        return await _code(resolvers.request_email_change(info, input.email))

    @strawberry.mutation(description="J3: switch to the new, confirmed e-mail with its code.")
    async def confirm_email_change(
        self,
        info: Info,
        input: Annotated[ConfirmEmailChangeInput, strawberry.argument(description="E-mail and code.")],
    ) -> UserPayload:
        return await _user(resolvers.confirm_email_change(info, input.email, input.code))

    @strawberry.mutation(description="J4: change the password; the other sessions end.")
    async def change_password(
        self,
        info: Info,
        input: Annotated[ChangePasswordInput, strawberry.argument(description="Passwords.")],
    ) -> UserPayload:
        return await _user(
            resolvers.change_password(info, input.current_password, input.password, input.password_repeat)
        )

    @strawberry.mutation(description="J9: show hints on or off.")
    async def set_show_hints(
        self,
        info: Info,
        input: Annotated[SetShowHintsInput, strawberry.argument(description="The switch.")],
    ) -> UserPayload:
        return await _user(resolvers.set_show_hints(info, input.show_hints))

    @strawberry.mutation(
        description="J10: delete the cabinet: sessions end, accounts are unlinked, personal data erased."
    )
    async def delete_cabinet(
        self,
        info: Info,
        input: Annotated[
            DeleteCabinetInput, strawberry.argument(description="Password and receipt choices.")
        ],
    ) -> DonePayload:
        choices = []
        for index, item in enumerate(input.receipts):
            if item.account_id.type_name != "Account":
                return DonePayload(
                    ok=False,
                    user_errors=[
                        user_error(NotFoundError(field=["input", "receipts", str(index), "accountId"]))
                    ],
                )
            choices.append(
                identity_profile.ReceiptChoice(
                    account_id=int(canonical(item.account_id).node_id),
                    electronic=item.electronic,
                    email=item.email,
                    postal_address=item.postal_address,
                )
            )
        try:
            await resolvers.delete_cabinet(info, input.password, choices)
        except DomainError as error:
            return DonePayload(ok=False, user_errors=errors_of(error))
        return DonePayload(ok=True, user_errors=[])


# --- A6 QR login and A7 device keys -----------------------------------------------------------------------


@strawberry.enum(description="State of a QR-code login (A6).")
class QrLoginStatus(Enum):
    """Life cycle of a challenge."""

    PENDING = strawberry.enum_value("PENDING", description="Waiting for the mobile app.")
    APPROVED = strawberry.enum_value("APPROVED", description="Approved: the tokens come with this event.")
    REJECTED = strawberry.enum_value("REJECTED", description="Rejected in the mobile app.")
    CONSUMED = strawberry.enum_value("CONSUMED", description="Already used (the tokens were delivered once).")
    EXPIRED = strawberry.enum_value("EXPIRED", description="Not approved within 2 minutes, or unknown.")


@strawberry.type(description="A6: a QR-code login started by the web client.")
class QrLoginStarted:
    """Keep `webSecret` private; show `qrPayload` as a QR code."""

    web_secret: str = strawberry.field(
        description="Secret of this web client: pass it to the `qrLogin` subscription; never show it."
    )
    qr_payload: str = strawberry.field(description="The text to encode in the QR code.")
    qr_svg: str = strawberry.field(description="The QR code as an SVG data URI, ready for an <img>.")
    expires_at: dt.datetime = strawberry.field(description="The challenge expires then (2 minutes).")


@strawberry.type(description="The result of starting a QR-code login.")
class StartQrLoginPayload:
    """The challenge or why not."""

    qr_login: QrLoginStarted | None = strawberry.field(description="The challenge; null on error.")
    user_errors: list[IdentityError] = strawberry.field(description="Why not.")


@strawberry.type(description="A6: what the mobile app shows before the user approves a QR-code login.")
class QrLoginRequest:
    """The web client asking to be logged in."""

    client_ip: str | None = strawberry.field(description="Address of the web client.")
    user_agent: str | None = strawberry.field(description="Browser of the web client.")
    created_at: dt.datetime = strawberry.field(description="When the QR code was shown.")
    expires_at: dt.datetime = strawberry.field(description="Approve before this moment.")

    @classmethod
    def of(cls, row: QrLoginChallenge) -> QrLoginRequest:
        return cls(
            client_ip=str(row.web_client_ip) if row.web_client_ip else None,
            user_agent=row.web_user_agent,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )


@strawberry.type(description="A6: an event of a QR-code login, delivered to the waiting web client.")
class QrLoginEvent:
    """Status, and the tokens on approval (exactly once)."""

    status: QrLoginStatus = strawberry.field(description="Where the login stands.")
    tokens: AuthTokens | None = strawberry.field(description="The web session's tokens, on APPROVED only.")
    expires_at: dt.datetime | None = strawberry.field(description="When the challenge expires.")


@strawberry.input(description="A6: approve or reject a scanned QR code.")
class DecideQrLoginInput:
    """The QR text and the decision."""

    qr_payload: str = strawberry.field(description="The text read from the QR code.")
    approve: bool = strawberry.field(description="True to log the web client in, false to reject.")


@strawberry.type(description="A7: a device key (held by the phone, unlocked by Face ID / Touch ID).")
class DeviceKey(relay.Node):
    """Backed by ``models.identity.DeviceCredential``."""

    is_type_of = backed_by(DeviceCredential)

    id: relay.NodeID[int]
    name: str | None = strawberry.field(description="Device name given at registration.")
    created_at: dt.datetime = strawberry.field(description="When the key was registered.")
    last_used_at: dt.datetime | None = strawberry.field(description="Last login with the key.")

    @strawberry.field(description="The credential id the device sends when logging in (base64url).")
    def credential_id(self, root: strawberry.Parent[DeviceCredential]) -> str:
        return identity_device_keys.b64e(root.credential_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[DeviceKey | None]:
        """Only the caller's own active keys."""
        return as_node(cls, await resolvers.device_keys_by_ids(info, [int(node_id) for node_id in node_ids]))


@strawberry.input(description="A7: the public half of a device key pair.")
class RegisterDeviceKeyInput:
    """Public key and device name."""

    public_key: str = strawberry.field(
        description="ECDSA P-256 public key: PEM, or base64 DER SubjectPublicKeyInfo."
    )
    name: str | None = rules.field("Device name, e.g. `iPhone Анны`.", rules.DEVICE_NAME)


@strawberry.type(description="The result of registering a device key.")
class RegisterDeviceKeyPayload:
    """The key or why not."""

    device_key: DeviceKey | None = strawberry.field(description="The registered key; null on error.")
    user_errors: list[IdentityError] = strawberry.field(description="Why not.")


@strawberry.input(description="A7: which key will sign.")
class StartDeviceLoginInput:
    """The credential id."""

    credential_id: str = strawberry.field(description="`DeviceKey.credentialId` stored on the device.")


@strawberry.type(description="A7: a challenge for the device to sign (valid 2 minutes, single use).")
class DeviceChallengePayload:
    """The challenge."""

    challenge: str | None = strawberry.field(description="Sign its UTF-8 bytes with ECDSA-SHA256.")
    expires_at: dt.datetime | None = strawberry.field(description="Sign and send before this moment.")
    user_errors: list[IdentityError] = strawberry.field(description="Why not.")


@strawberry.input(description="A7: the signed challenge.")
class LoginWithDeviceKeyInput:
    """Credential, challenge and signature."""

    credential_id: str = strawberry.field(description="`DeviceKey.credentialId`.")
    challenge: str = strawberry.field(description="The challenge from `startDeviceLogin`.")
    signature: str = strawberry.field(description="DER ECDSA-SHA256 signature, base64(url).")
    device_name: str | None = rules.field("Name for the session list.", rules.DEVICE_NAME)


@strawberry.input(description="A7: a device key to revoke.")
class RevokeDeviceKeyInput:
    """The key."""

    device_key_id: relay.GlobalID = strawberry.field(description="ID of a `DeviceKey`.")


def _qr_svg(payload: str) -> str:
    import segno

    return str(segno.make(payload, error="m").svg_data_uri(scale=4))


@strawberry.type
class AltLoginMutations:
    """QR and device-key mutations (merged into Mutation via IdentityMutations)."""

    @strawberry.mutation(description="A6: the web client starts a QR-code login (no token needed).")
    async def start_qr_login(self, info: Info) -> StartQrLoginPayload:
        try:
            started = await resolvers.start_qr_login(info)
        except DomainError as error:
            return StartQrLoginPayload(qr_login=None, user_errors=errors_of(error))
        return StartQrLoginPayload(
            qr_login=QrLoginStarted(
                web_secret=started.web_secret,
                qr_payload=started.qr_payload,
                qr_svg=_qr_svg(started.qr_payload),
                expires_at=started.expires_at,
            ),
            user_errors=[],
        )

    @strawberry.mutation(description="A6: the logged-in mobile app approves or rejects a scanned QR code.")
    async def decide_qr_login(
        self,
        info: Info,
        input: Annotated[DecideQrLoginInput, strawberry.argument(description="QR text and decision.")],
    ) -> DonePayload:
        try:
            await resolvers.decide_qr_login(info, input.qr_payload, input.approve)
        except DomainError as error:
            return DonePayload(ok=False, user_errors=errors_of(error))
        return DonePayload(ok=True, user_errors=[])

    @strawberry.mutation(description="A7: register this device's public key (after a normal login).")
    async def register_device_key(
        self,
        info: Info,
        input: Annotated[RegisterDeviceKeyInput, strawberry.argument(description="The key.")],
    ) -> RegisterDeviceKeyPayload:
        try:
            key = await resolvers.register_device_key(info, input.public_key, input.name)
        except DomainError as error:
            return RegisterDeviceKeyPayload(device_key=None, user_errors=errors_of(error))
        return RegisterDeviceKeyPayload(device_key=key, user_errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(description="A7: get a challenge for the device key to sign.")
    def start_device_login(
        self,
        info: Info,
        input: Annotated[StartDeviceLoginInput, strawberry.argument(description="The credential.")],
    ) -> DeviceChallengePayload:
        challenge, expires_at = resolvers.device_challenge(info, input.credential_id)
        return DeviceChallengePayload(challenge=challenge, expires_at=expires_at, user_errors=[])

    @strawberry.mutation(description="A7: log in with the device's signature of the challenge.")
    async def login_with_device_key(
        self,
        info: Info,
        input: Annotated[LoginWithDeviceKeyInput, strawberry.argument(description="Signed challenge.")],
    ) -> LoginPayload:
        return await _login(
            resolvers.login_with_device_key(
                info, input.credential_id, input.challenge, input.signature, input.device_name
            )
        )

    @strawberry.mutation(description="A7: revoke a device key.")
    async def revoke_device_key(
        self,
        info: Info,
        input: Annotated[RevokeDeviceKeyInput, strawberry.argument(description="The key.")],
    ) -> DonePayload:
        found = input.device_key_id.type_name == "DeviceKey" and await resolvers.revoke_device_key(
            info, int(canonical(input.device_key_id).node_id)
        )
        if not found:
            return DonePayload(
                ok=False, user_errors=[user_error(NotFoundError(field=["input", "deviceKeyId"]))]
            )
        return DonePayload(ok=True, user_errors=[])


@strawberry.type
class IdentitySubscriptions:
    """Subscriptions of this module (merged into Subscription)."""

    @strawberry.subscription(
        description=(
            "A6: the web client waits here after `startQrLogin`: PENDING, then APPROVED with tokens (once), "
            "REJECTED, EXPIRED or CONSUMED; the stream then ends."
        )
    )
    async def qr_login(
        self,
        info: Info,
        web_secret: Annotated[str, strawberry.argument(description="`QrLoginStarted.webSecret`.")],
    ) -> AsyncGenerator[QrLoginEvent, None]:
        async for status, tokens, expires_at in resolvers.qr_login_events(info, web_secret):
            yield QrLoginEvent(
                status=QrLoginStatus(status),
                tokens=AuthTokens.of(tokens) if tokens else None,
                expires_at=expires_at,
            )


# --- A5 VK and J8 connected login services -------------------------------------------------------------


@strawberry.enum(description="External login services (J8).")
class LoginProvider(Enum):
    """Providers."""

    VK = strawberry.enum_value("VK", description="VK ID (ВКонтакте).")


@strawberry.type(description="J8: a login service connected to the cabinet.")
class LoginService(relay.Node):
    """Backed by ``models.identity.ExternalIdentity``."""

    is_type_of = backed_by(ExternalIdentity)

    id: relay.NodeID[int]
    created_at: dt.datetime = strawberry.field(description="When it was connected.")

    @strawberry.field(description="Which service.")
    def provider(self, root: strawberry.Parent[ExternalIdentity]) -> LoginProvider:
        return LoginProvider(root.provider.value)

    @strawberry.field(description="The account's name at the service, as it last reported it.")
    def display_name(self, root: strawberry.Parent[ExternalIdentity]) -> str | None:
        profile = root.profile or {}
        name = " ".join(str(profile.get(key) or "") for key in ("first_name", "last_name")).strip()
        return name or None

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[LoginService | None]:
        """Only the caller's own."""
        return as_node(
            cls, await resolvers.login_services_by_ids(info, [int(node_id) for node_id in node_ids])
        )


@strawberry.input(description="A5: where VK should send the user back.")
class StartVkLoginInput:
    """The redirect URI."""

    redirect_uri: str = strawberry.field(description="The front end's callback URL registered at VK ID.")


@strawberry.type(
    description="A5: open `authorizationUrl`; VK returns to the redirect URI with `code` and `state`."
)
class StartVkLoginPayload:
    """The URL or why not."""

    authorization_url: str | None = strawberry.field(description="VK's consent page.")
    state: str | None = strawberry.field(
        description="Random, single-use state (10 minutes); VK sends it back unchanged. Keep it (e.g. in "
        "sessionStorage) and finish the flow only when the state VK returns equals it."
    )
    user_errors: list[IdentityError] = strawberry.field(description="Why not.")


@strawberry.input(description="A5: what VK returned to the redirect URI.")
class CompleteVkLoginInput:
    """Code, state and consent."""

    code: str = strawberry.field(description="The authorization code.")
    state: str = strawberry.field(description="The state from `startVkLogin`.")
    redirect_uri: str = strawberry.field(description="The same redirect URI as in `startVkLogin`.")
    consent: bool = strawberry.field(
        default=False,
        description="Consent to the personal-data policy (required when VK registers a new cabinet).",
    )
    client: ClientKind | None = strawberry.field(default=None, description="Web (default) or mobile.")
    device_name: str | None = rules.field("Name for the session list.", rules.DEVICE_NAME)


@strawberry.input(description="J8: connect VK to the logged-in cabinet with what VK returned.")
class ConnectVkInput:
    """Code and state."""

    code: str = strawberry.field(description="The authorization code.")
    state: str = strawberry.field(description="The state from `startVkLogin`.")
    redirect_uri: str = strawberry.field(description="The same redirect URI as in `startVkLogin`.")


@strawberry.input(description="J8: a connected login service to disconnect.")
class UnlinkLoginServiceInput:
    """The service."""

    login_service_id: relay.GlobalID = strawberry.field(description="ID of a `LoginService`.")


@strawberry.type
class ExternalLoginQueries:
    """J8 queries (merged into Query)."""

    @strawberry.field(description="J8: the caller's connected login services.")
    async def login_services(self, info: Info) -> list[LoginService]:
        return await resolvers.login_services(info)  # type: ignore[return-value]


@strawberry.type
class ExternalLoginMutations:
    """A5 / J8 mutations (merged into Mutation)."""

    @strawberry.mutation(
        description="A5: start logging in (or registering) with VK — or, when logged in, J8: start "
        "connecting VK to this cabinet. The flow belongs to whoever started it: finish an anonymous "
        "start with `completeVkLogin`, a logged-in one with `connectVk` as the same user; each state "
        "works once."
    )
    async def start_vk_login(
        self,
        info: Info,
        input: Annotated[StartVkLoginInput, strawberry.argument(description="The redirect URI.")],
    ) -> StartVkLoginPayload:
        try:
            url, state = await resolvers.start_vk_login(info, input.redirect_uri)
        except DomainError as error:
            return StartVkLoginPayload(authorization_url=None, state=None, user_errors=errors_of(error))
        return StartVkLoginPayload(authorization_url=url, state=state, user_errors=[])

    @strawberry.mutation(
        description="A5: finish the VK login started anonymously; a new VK user with a phone gets a cabinet "
        "(consent needed). A VK profile whose phone already has a cabinet is refused "
        "(`LOGIN_SERVICE_LINK_REQUIRES_PROOF`): its owner logs in and connects VK with `connectVk`."
    )
    async def complete_vk_login(
        self,
        info: Info,
        input: Annotated[CompleteVkLoginInput, strawberry.argument(description="What VK returned.")],
    ) -> LoginPayload:
        return await _login(
            resolvers.complete_vk_login(
                info,
                input.code,
                input.state,
                input.redirect_uri,
                input.consent,
                _client(input.client),
                input.device_name,
            )
        )

    @strawberry.mutation(
        description="J8: connect VK to the logged-in cabinet (after `startVkLogin` sent with the same "
        "user's token)."
    )
    async def connect_vk(
        self,
        info: Info,
        input: Annotated[ConnectVkInput, strawberry.argument(description="What VK returned.")],
    ) -> UserPayload:
        return await _user(resolvers.connect_vk(info, input.code, input.state, input.redirect_uri))

    @strawberry.mutation(description="J8: disconnect a login service.")
    async def unlink_login_service(
        self,
        info: Info,
        input: Annotated[UnlinkLoginServiceInput, strawberry.argument(description="The service.")],
    ) -> DonePayload:
        found = input.login_service_id.type_name == "LoginService" and await resolvers.unlink_login_service(
            info, int(canonical(input.login_service_id).node_id)
        )
        if not found:
            return DonePayload(
                ok=False, user_errors=[user_error(NotFoundError(field=["input", "loginServiceId"]))]
            )
        return DonePayload(ok=True, user_errors=[])
