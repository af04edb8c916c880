"""Identity through GraphQL over HTTP: codes read from the outbox, as production delivers them (A1–A9, J)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import text

from app.demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_PHONE, DEMO_PHONE_E164
from services.codes import CODE_TTL

ERR = (
    "userErrors { code message field ... on WrongCodeError { attemptsLeft } "
    "... on RetryLaterError { retryAfterSeconds } }"
)
START = f"""mutation($input: StartRegistrationInput!) {{ startRegistration(input: $input) {{
  codeSent {{ channel destination expiresAt }} {ERR} }} }}"""
REGISTER = f"""mutation($input: RegisterInput!) {{ register(input: $input) {{
  tokens {{ accessToken refreshToken }} user {{ phone email emailConfirmed fullName }} {ERR} }} }}"""
LOGIN = f"""mutation($input: LoginWithPasswordInput!) {{ loginWithPassword(input: $input) {{
  tokens {{ accessToken refreshToken }} user {{ phone }} {ERR} }} }}"""
REQUEST_LOGIN_CODE = f"""mutation($input: RequestCodeInput!) {{ requestLoginCode(input: $input) {{
  codeSent {{ channel destination }} {ERR} }} }}"""
LOGIN_CODE = f"""mutation($input: LoginWithCodeInput!) {{ loginWithCode(input: $input) {{
  tokens {{ accessToken refreshToken }} user {{ phone }} {ERR} }} }}"""
REFRESH = f"""mutation($input: RefreshTokensInput!) {{ refreshTokens(input: $input) {{
  tokens {{ accessToken refreshToken }} {ERR} }} }}"""
ME = "{ me { phone email emailConfirmed lastName firstName middleName showHints } }"

FORM = {
    "phone": "+7 (222) 333-44-55",
    "email": "Petrov@Example.RU",
    "lastName": "Петров",
    "firstName": "Пётр",
    "middleName": None,
    "password": "Secret#1",
    "passwordRepeat": "Secret#1",
    "consent": True,
}


async def last_code(db: Any, destination: str) -> str:
    """The code in the newest outbox message to ``destination``."""
    async with db.session() as session:
        body = (
            await session.execute(
                text("SELECT body FROM outbox_messages WHERE destination = :d ORDER BY id DESC LIMIT 1"),
                {"d": destination},
            )
        ).scalar_one()
    found = re.search(r"\b(\d{6})\b", body)
    assert found, body
    return found.group(1)


async def sql(db: Any, statement: str, **params: Any) -> Any:
    async with db.session() as session:
        result = await session.execute(text(statement), params)
        await session.commit()
        return result


async def allow_resend(db: Any) -> None:
    """Move every code's creation back past the resend cooldown."""
    await sql(db, "UPDATE verification_codes SET created_at = created_at - interval '2 minutes'")


async def register(api: Any, db: Any, **changes: Any) -> dict[str, Any]:
    form = {**FORM, **changes}
    started = (await api.data(START, input=form))["startRegistration"]
    assert started["userErrors"] == [], started
    phone = started["codeSent"]["destination"]
    code = await last_code(db, phone)
    return (await api.data(REGISTER, input={"phone": form["phone"], "code": code}))["register"]


async def password_login(api: Any, login: str = DEMO_PHONE, password: str = DEMO_PASSWORD) -> dict[str, Any]:
    return (await api.data(LOGIN, input={"login": login, "password": password}))["loginWithPassword"]


# --- A1 -----------------------------------------------------------------------------------------------------


async def test_A1_register_with_sms_code_records_consent_and_sends_email_code(api, db):
    result = await register(api, db)
    assert result["userErrors"] == []
    assert result["user"] == {
        "phone": "+72223334455",
        "email": "petrov@example.ru",
        "emailConfirmed": False,
        "fullName": "Петров Пётр",
    }
    me = await api.data(ME, token=result["tokens"]["accessToken"])
    assert me["me"]["phone"] == "+72223334455"
    consent = (
        await sql(
            db,
            "SELECT c.kind, c.policy_version, host(c.client_ip) AS ip, c.accepted_at FROM consents c "
            "JOIN users u ON u.id = c.user_id WHERE u.phone = '+72223334455'",
        )
    ).one()
    assert consent.kind == "PERSONAL_DATA" and consent.policy_version and consent.ip == "203.0.113.10"
    assert len(await last_code(db, "petrov@example.ru")) == 6  # A2 code went to the e-mail
    audit = (await sql(db, "SELECT action FROM audit_log WHERE action = 'user.register'")).all()
    assert len(audit) == 1


async def test_A1_code_is_stored_hashed(api, db):
    await api.data(START, input=FORM)
    code = await last_code(db, "+72223334455")
    stored = (
        await sql(db, "SELECT code_hash FROM verification_codes WHERE destination = '+72223334455'")
    ).scalar()
    assert code not in stored and len(stored) == 64


async def test_A1_every_invalid_field_is_reported(api):
    form = {
        **FORM,
        "phone": "12",
        "email": "not-an-email",
        "lastName": "Petrov1",
        "firstName": "Я" * 51,
        "password": "secret",
        "consent": False,
    }
    result = (await api.data(START, input=form))["startRegistration"]
    assert result["codeSent"] is None
    codes = {tuple(e["field"]): e["code"] for e in result["userErrors"]}
    assert codes == {
        ("input", "phone"): "PHONE_INVALID",
        ("input", "email"): "EMAIL_INVALID",
        ("input", "lastName"): "NAME_INVALID",
        ("input", "firstName"): "NAME_INVALID",
        ("input", "password"): "PASSWORD_WEAK",
        ("input", "consent"): "CONSENT_REQUIRED",
    }


async def test_A1_names_accept_hyphen_and_em_dash_and_latin(api):
    form = {**FORM, "lastName": "Римский-Корсаков", "firstName": "Anna—Maria"}
    result = (await api.data(START, input=form))["startRegistration"]
    assert result["userErrors"] == []


async def test_A1_password_repeat_must_match(api):
    result = (await api.data(START, input={**FORM, "passwordRepeat": "Secret#2"}))["startRegistration"]
    assert [(e["code"], e["message"]) for e in result["userErrors"]] == [
        ("PASSWORD_MISMATCH", "Пароли не совпадают")
    ]


async def test_A1_taken_phone_is_refused(api):
    result = (await api.data(START, input={**FORM, "phone": "8 (111) 111-11-11"}))["startRegistration"]
    assert result["userErrors"] == [
        {
            "code": "PHONE_TAKEN",
            "message": (
                "На указанный номер уже зарегистрирован личный кабинет. Внесите другой номер телефона."
            ),
            "field": ["input", "phone"],
        }
    ]


async def test_A1_taken_confirmed_email_is_refused(api):
    result = (await api.data(START, input={**FORM, "email": DEMO_EMAIL.upper()}))["startRegistration"]
    assert [e["message"] for e in result["userErrors"]] == [
        "Указанная электронная почта уже зарегистрирована в личном кабинете. Укажите другой адрес."
    ]


@pytest.mark.calendar
async def test_A1_expired_code(api, db, clock):
    await api.data(START, input=FORM)
    code = await last_code(db, "+72223334455")
    clock.advance(CODE_TTL + dt.timedelta(seconds=1))
    result = (await api.data(REGISTER, input={"phone": FORM["phone"], "code": code}))["register"]
    assert result["tokens"] is None
    assert [(e["code"], e["message"]) for e in result["userErrors"]] == [
        ("CODE_EXPIRED", "Срок действия кода истек. Повторите попытку!")
    ]


async def test_A1_wrong_code_then_too_many_tries_void_the_code(api, db):
    await api.data(START, input=FORM)
    code = await last_code(db, "+72223334455")
    wrong = "000000" if code != "000000" else "111111"
    # ten aliases in one request are ten attempts
    aliases = " ".join(
        f'a{i}: register(input: {{phone: "{FORM["phone"]}", code: "{wrong}"}}) {{ {ERR} }}' for i in range(10)
    )
    result = await api.data(f"mutation {{ {aliases} }}")
    seen = [result[f"a{i}"]["userErrors"][0] for i in range(10)]
    assert [e.get("attemptsLeft") for e in seen[:4]] == [4, 3, 2, 1]
    assert {e["code"] for e in seen[:4]} == {"CODE_INVALID"}
    assert {e["code"] for e in seen[4:]} == {"CODE_ATTEMPTS_EXCEEDED"}
    # even the right code no longer works
    after = (await api.data(REGISTER, input={"phone": FORM["phone"], "code": code}))["register"]
    assert after["userErrors"][0]["code"] == "CODE_ATTEMPTS_EXCEEDED"


async def test_A1_code_is_single_use(api, db):
    await api.data(START, input=FORM)
    code = await last_code(db, "+72223334455")
    first = (await api.data(REGISTER, input={"phone": FORM["phone"], "code": code}))["register"]
    assert first["userErrors"] == []
    again = (await api.data(REGISTER, input={"phone": FORM["phone"], "code": code}))["register"]
    assert again["userErrors"][0]["code"] == "CODE_INVALID"


async def test_A1_resend_cooldown_and_new_code_replaces_old(api, db):
    await api.data(START, input=FORM)
    old = await last_code(db, "+72223334455")
    soon = (await api.data(START, input=FORM))["startRegistration"]
    assert soon["userErrors"][0]["code"] == "CODE_RESEND_TOO_SOON"
    assert 0 < soon["userErrors"][0]["retryAfterSeconds"] <= 60
    await allow_resend(db)
    await api.data(START, input=FORM)
    new = await last_code(db, "+72223334455")
    if new != old:
        stale = (await api.data(REGISTER, input={"phone": FORM["phone"], "code": old}))["register"]
        assert stale["userErrors"][0]["code"] == "CODE_INVALID"
    ok = (await api.data(REGISTER, input={"phone": FORM["phone"], "code": new}))["register"]
    assert ok["userErrors"] == []


async def test_A1_codes_are_rate_limited_per_destination(api, db):
    codes = []
    for _ in range(11):
        await allow_resend(db)
        codes.append((await api.data(START, input=FORM))["startRegistration"]["userErrors"])
    assert codes[:10] == [[]] * 10
    assert codes[10][0]["code"] == "RATE_LIMITED"


# --- A2 / A3 ------------------------------------------------------------------------------------------------


async def test_A3_unconfirmed_email_cannot_log_in_until_A2(api, db):
    registered = await register(api, db)
    token = registered["tokens"]["accessToken"]
    refused = await password_login(api, "petrov@example.ru", "Secret#1")
    assert refused["userErrors"][0]["code"] == "EMAIL_NOT_CONFIRMED"
    code = await last_code(db, "petrov@example.ru")
    confirmed = await api.data(
        f"mutation($c: String!) {{ confirmEmail(input: {{code: $c}}) {{ user {{ emailConfirmed }} "
        f"{ERR} }} }}",
        token=token,
        c=code,
    )
    assert confirmed["confirmEmail"] == {"user": {"emailConfirmed": True}, "userErrors": []}
    assert (await password_login(api, "PETROV@example.ru", "Secret#1"))["userErrors"] == []


async def test_A2_request_email_confirmation_again(api, db):
    registered = await register(api, db)
    await allow_resend(db)
    result = await api.data(
        f"mutation {{ requestEmailConfirmation {{ codeSent {{ channel destination }} {ERR} }} }}",
        token=registered["tokens"]["accessToken"],
    )
    assert result["requestEmailConfirmation"]["codeSent"] == {
        "channel": "EMAIL",
        "destination": "petrov@example.ru",
    }


async def test_A3_login_by_phone_in_any_form_and_by_email(api):
    for login in (DEMO_PHONE, "+71111111111", "8 111 111 11 11", "1111111111", DEMO_EMAIL):
        result = await password_login(api, login)
        assert result["userErrors"] == [], login
        assert result["user"]["phone"] == DEMO_PHONE_E164


async def test_A3_wrong_password(api):
    result = await password_login(api, DEMO_PHONE, "Wrong#123")
    assert result["tokens"] is None
    assert result["userErrors"][0]["code"] == "INVALID_CREDENTIALS"


# --- A4 -----------------------------------------------------------------------------------------------------


async def test_A4_login_by_code_to_phone_and_email(api, db):
    for login, destination, channel in (
        (DEMO_PHONE, DEMO_PHONE_E164, "SMS"),
        (DEMO_EMAIL, DEMO_EMAIL, "EMAIL"),
    ):
        sent = (await api.data(REQUEST_LOGIN_CODE, input={"login": login}))["requestLoginCode"]
        assert sent["codeSent"] == {"channel": channel, "destination": destination}
        code = await last_code(db, destination)
        result = (await api.data(LOGIN_CODE, input={"login": login, "code": code}))["loginWithCode"]
        assert result["userErrors"] == [] and result["user"]["phone"] == DEMO_PHONE_E164


async def test_A4_unknown_phone_is_an_error(api):
    result = (await api.data(REQUEST_LOGIN_CODE, input={"login": "+7 999 000-00-01"}))["requestLoginCode"]
    assert result["userErrors"][0]["code"] == "PHONE_NOT_REGISTERED"


async def test_A4_unconfirmed_email_gets_no_code(api, db):
    await register(api, db)
    result = (await api.data(REQUEST_LOGIN_CODE, input={"login": "petrov@example.ru"}))["requestLoginCode"]
    assert result["userErrors"][0]["code"] == "EMAIL_NOT_CONFIRMED"


# --- A8 -----------------------------------------------------------------------------------------------------


async def test_A8_password_recovery_by_phone_ends_sessions(api, db):
    old = await password_login(api)
    sent = await api.data(
        f'mutation {{ requestPasswordReset(input: {{login: "{DEMO_PHONE}"}}) {{ '
        f"codeSent {{ channel }} {ERR} }} }}"
    )
    assert sent["requestPasswordReset"]["codeSent"] == {"channel": "SMS"}
    code = await last_code(db, DEMO_PHONE_E164)
    reset = f"""mutation($input: ResetPasswordInput!) {{ resetPassword(input: $input) {{ ok {ERR} }} }}"""
    weak = await api.data(
        reset, input={"login": DEMO_PHONE, "code": code, "password": "abc", "passwordRepeat": "abc"}
    )
    assert weak["resetPassword"]["userErrors"][0]["code"] == "PASSWORD_WEAK"
    done = await api.data(
        reset,
        input={"login": DEMO_PHONE, "code": code, "password": "New#pass1", "passwordRepeat": "New#pass1"},
    )
    assert done["resetPassword"] == {"ok": True, "userErrors": []}
    assert (await password_login(api))["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    assert (await password_login(api, DEMO_PHONE, "New#pass1"))["userErrors"] == []
    response = await api.post(ME, token=old["tokens"]["accessToken"])
    assert response.status_code == 401


async def test_A8_unknown_email_is_an_error(api):
    result = await api.data(
        'mutation { requestPasswordReset(input: {login: "nobody@example.ru"}) { '
        f"codeSent {{ channel }} {ERR} }} }}"
    )
    assert result["requestPasswordReset"]["userErrors"][0]["code"] == "EMAIL_NOT_REGISTERED"


# --- A9 and tokens ------------------------------------------------------------------------------------------


async def test_A9_logout_stops_the_access_token(api):
    tokens = (await password_login(api))["tokens"]
    assert (await api.data(ME, token=tokens["accessToken"]))["me"]["phone"] == DEMO_PHONE_E164
    result = await api.data(f"mutation {{ logout {{ ok {ERR} }} }}", token=tokens["accessToken"])
    assert result["logout"]["ok"] is True
    assert (await api.post(ME, token=tokens["accessToken"])).status_code == 401
    refreshed = (await api.data(REFRESH, input={"refreshToken": tokens["refreshToken"]}))["refreshTokens"]
    assert refreshed["userErrors"][0]["code"] == "INVALID_REFRESH_TOKEN"


async def test_refresh_rotates_and_reuse_revokes_the_family(api):
    first = (await password_login(api))["tokens"]
    second = (await api.data(REFRESH, input={"refreshToken": first["refreshToken"]}))["refreshTokens"]
    assert second["userErrors"] == [] and second["tokens"]["refreshToken"] != first["refreshToken"]
    reused = (await api.data(REFRESH, input={"refreshToken": first["refreshToken"]}))["refreshTokens"]
    assert reused["userErrors"][0]["code"] == "INVALID_REFRESH_TOKEN"
    # the whole session is gone: the newer refresh token and access token too
    newer = (await api.data(REFRESH, input={"refreshToken": second["tokens"]["refreshToken"]}))[
        "refreshTokens"
    ]
    assert newer["userErrors"][0]["code"] == "INVALID_REFRESH_TOKEN"
    assert (await api.post(ME, token=second["tokens"]["accessToken"])).status_code == 401


async def test_sessions_list_and_end_one_and_all_others(api):
    a = (await password_login(api))["tokens"]["accessToken"]
    b = (await password_login(api))["tokens"]["accessToken"]
    c = (await password_login(api))["tokens"]["accessToken"]
    listed = (await api.data("{ sessions { id current client clientIp } }", token=a))["sessions"]
    assert len(listed) >= 3 and sum(s["current"] for s in listed) == 1
    other = next(s["id"] for s in listed if not s["current"])
    ended = await api.data(
        f'mutation {{ endSession(input: {{sessionId: "{other}"}}) {{ endedCount {ERR} }} }}', token=a
    )
    assert ended["endSession"] == {"endedCount": 1, "userErrors": []}
    rest = await api.data(f"mutation {{ endOtherSessions {{ endedCount {ERR} }} }}", token=a)
    assert rest["endOtherSessions"]["endedCount"] >= 1
    assert (await api.post(ME, token=b)).status_code == 401
    assert (await api.post(ME, token=c)).status_code == 401
    assert [s["current"] for s in (await api.data("{ sessions { current } }", token=a))["sessions"]] == [True]


# --- J ------------------------------------------------------------------------------------------------------


async def test_J1_names_with_audit(api, db, customer_token):
    update = f"""mutation($input: UpdatePersonalDataInput!) {{ updatePersonalData(input: $input) {{
      user {{ lastName firstName middleName }} {ERR} }} }}"""
    bad = await api.data(update, token=customer_token, input={"lastName": "Ivanov!", "firstName": "Иван"})
    assert bad["updatePersonalData"]["userErrors"][0]["field"] == ["input", "lastName"]
    ok = await api.data(
        update,
        token=customer_token,
        input={"lastName": "Петров-Водкин", "firstName": "Иван", "middleName": ""},
    )
    assert ok["updatePersonalData"]["user"] == {
        "lastName": "Петров-Водкин",
        "firstName": "Иван",
        "middleName": None,
    }
    row = (
        await sql(
            db, "SELECT changes, host(client_ip) AS ip FROM audit_log WHERE action = 'user.update_names'"
        )
    ).one()
    assert row.changes["last_name"][1] == "Петров-Водкин" and row.ip == "203.0.113.10"


async def test_J2_change_phone_with_code_to_new_number(api, db, customer_token):
    request = f"""mutation($p: String!) {{ requestPhoneChange(input: {{phone: $p}}) {{
      codeSent {{ destination }} {ERR} }} }}"""
    taken = await api.data(request, token=customer_token, p="+7 (444) 444-44-44")
    assert taken["requestPhoneChange"]["userErrors"][0]["code"] == "PHONE_TAKEN"
    sent = await api.data(request, token=customer_token, p="8 (901) 000-00-02")
    assert sent["requestPhoneChange"]["codeSent"] == {"destination": "+79010000002"}
    code = await last_code(db, "+79010000002")
    confirm = f"""mutation($p: String!, $c: String!) {{ confirmPhoneChange(input: {{phone: $p, code: $c}}) {{
      user {{ phone }} {ERR} }} }}"""
    done = await api.data(confirm, token=customer_token, p="+79010000002", c=code)
    assert done["confirmPhoneChange"] == {"user": {"phone": "+79010000002"}, "userErrors": []}
    assert (await password_login(api, "+79010000002"))["userErrors"] == []
    assert (await sql(db, "SELECT count(*) FROM audit_log WHERE action = 'user.change_phone'")).scalar() == 1


async def test_J3_change_email_with_code(api, db, customer_token):
    request = f"""mutation($e: String!) {{ requestEmailChange(input: {{email: $e}}) {{
      codeSent {{ destination }} {ERR} }} }}"""
    taken = await api.data(request, token=customer_token, e="sidorova@mail.ru")
    assert taken["requestEmailChange"]["userErrors"][0]["code"] == "EMAIL_TAKEN"
    await api.data(request, token=customer_token, e="new@example.ru")
    code = await last_code(db, "new@example.ru")
    confirm = f"""mutation($e: String!, $c: String!) {{ confirmEmailChange(input: {{email: $e, code: $c}}) {{
      user {{ email emailConfirmed }} {ERR} }} }}"""
    done = await api.data(confirm, token=customer_token, e="new@example.ru", c=code)
    assert done["confirmEmailChange"] == {
        "user": {"email": "new@example.ru", "emailConfirmed": True},
        "userErrors": [],
    }


async def test_J4_change_password_ends_other_sessions(api):
    keep = (await password_login(api))["tokens"]["accessToken"]
    other = (await password_login(api))["tokens"]["accessToken"]
    change = f"""mutation($input: ChangePasswordInput!) {{ changePassword(input: $input) {{
      user {{ phone }} {ERR} }} }}"""
    wrong = await api.data(
        change,
        token=keep,
        input={"currentPassword": "nope", "password": "New#pass1", "passwordRepeat": "New#pass1"},
    )
    assert wrong["changePassword"]["userErrors"][0]["code"] == "CURRENT_PASSWORD_INVALID"
    done = await api.data(
        change,
        token=keep,
        input={"currentPassword": DEMO_PASSWORD, "password": "New#pass1", "passwordRepeat": "New#pass1"},
    )
    assert done["changePassword"]["userErrors"] == []
    assert (await api.post(ME, token=other)).status_code == 401
    assert (await api.data(ME, token=keep))["me"]["phone"] == DEMO_PHONE_E164


async def test_J9_show_hints(api, customer_token):
    result = await api.data(
        f"mutation {{ setShowHints(input: {{showHints: false}}) {{ user {{ showHints }} {ERR} }} }}",
        token=customer_token,
    )
    assert result["setShowHints"]["user"] == {"showHints": False}


async def test_J10_delete_cabinet(api, db):
    token = (await password_login(api))["tokens"]["accessToken"]
    accounts = (
        (
            await sql(
                db,
                "SELECT ua.account_id FROM user_accounts ua JOIN users u ON u.id = ua.user_id "
                "WHERE u.phone = :p",
                p=DEMO_PHONE_E164,
            )
        )
        .scalars()
        .all()
    )
    from strawberry.relay import to_base64

    delete = f"""mutation($input: DeleteCabinetInput!) {{ deleteCabinet(input: $input) {{ ok {ERR} }} }}"""
    missing = await api.data(delete, token=token, input={"password": DEMO_PASSWORD, "receipts": []})
    if accounts:
        assert missing["deleteCabinet"]["ok"] is False
    receipts = [
        {"accountId": to_base64("Account", account_id), "electronic": True, "email": "keep@example.ru"}
        for account_id in accounts
    ]
    done = await api.data(delete, token=token, input={"password": DEMO_PASSWORD, "receipts": receipts})
    assert done["deleteCabinet"] == {"ok": True, "userErrors": []}
    assert (await api.post(ME, token=token)).status_code == 401
    assert (await password_login(api))["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    row = (await sql(db, "SELECT changes FROM audit_log WHERE action = 'user.delete'")).one()
    assert len(row.changes["receipts"]) == len(accounts)
    # the phone is free for a new registration
    again = (await api.data(START, input={**FORM, "phone": DEMO_PHONE}))["startRegistration"]
    assert again["userErrors"] == []
