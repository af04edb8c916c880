"""Security review, issue 15: identity hardening (findings 9 and 10; finding 3 is in test_identity_vk.py).

- SEC9: every rate limit counts the normalized identity (E.164 phone, lower-cased e-mail), not the text as
  typed, and the B1 link-proof limit holds however many attempts run at once.
- SEC10: password login costs one argon2 verification whether the login names a cabinet or not.

All over HTTP to the app with real PostgreSQL and Redis; SEC10 only wraps our own functions to count calls.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from app.demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_PHONE, SECOND_CUSTOMER
from app.settings import Settings
from models.accounts import LinkAttempt
from services import passwords
from services.accounts import MAX_FAILED_LINK_ATTEMPTS
from services.identity import common
from services.identity.common import LOGIN_LIMIT_PER_LOGIN
from tests.conftest import production
from tests.test_accounts import LINK, demo_user_id, link_input, seed_accounts
from tests.test_identity import REQUEST_LOGIN_CODE, allow_resend, password_login, sql

# --- SEC9: limits keyed on the normalized identity ---------------------------------------------------------

SPELLINGS = ["+7 (984) 417-37-94", "89844173794", "+79844173794", "8 (984) 417-37-94", " 9844173794 "]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every finding here is tested against an app in production configuration (issue 15)."""
    return production(settings)


async def test_SEC9_phone_spellings_share_one_password_login_allowance(api: Any) -> None:
    tries, _ = LOGIN_LIMIT_PER_LOGIN
    for _ in range(tries):
        result = await password_login(api, SPELLINGS[0], "Wrong#pass1")
        assert result["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    assert (await password_login(api, SPELLINGS[0], "Wrong#pass1"))["userErrors"][0]["code"] == "RATE_LIMITED"
    for spelling in SPELLINGS[1:]:
        result = await password_login(api, spelling, "Wrong#pass1")
        assert result["tokens"] is None
        assert result["userErrors"][0]["code"] == "RATE_LIMITED", spelling


async def test_SEC9_email_spellings_share_one_password_login_allowance(api: Any) -> None:
    tries, _ = LOGIN_LIMIT_PER_LOGIN
    for _ in range(tries):
        result = await password_login(api, DEMO_EMAIL, "Wrong#pass1")
        assert result["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    for spelling in (DEMO_EMAIL.upper(), "  Ivanov@BK.ru ", DEMO_EMAIL):
        result = await password_login(api, spelling, DEMO_PASSWORD)  # even the right password waits
        assert result["tokens"] is None
        assert result["userErrors"][0]["code"] == "RATE_LIMITED", spelling


async def test_SEC9_code_requests_share_one_allowance_across_spellings(api: Any, db: Any) -> None:
    first = (await api.data(REQUEST_LOGIN_CODE, input={"login": DEMO_PHONE}))["requestLoginCode"]
    assert first["userErrors"] == []
    for spelling in ("81111111111", "+71111111111", "8 (111) 111-11-11"):
        again = (await api.data(REQUEST_LOGIN_CODE, input={"login": spelling}))["requestLoginCode"]
        assert again["userErrors"][0]["code"] == "CODE_RESEND_TOO_SOON", spelling
    await allow_resend(db)
    assert (await api.data(REQUEST_LOGIN_CODE, input={"login": "81111111111"}))["requestLoginCode"][
        "userErrors"
    ] == []


async def test_SEC9_concurrent_wrong_link_proofs_are_checked_at_most_the_limit(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings, link_to=None)
    wrong = link_input(seeded, proof="1.00")

    async def attempt() -> str:
        result = await api.data(LINK, token=customer_token, input=wrong)
        return str(result["linkAccount"]["userErrors"][0]["code"])

    outcomes = Counter(await asyncio.gather(*(attempt() for _ in range(40))))
    assert outcomes == {
        "ACCOUNT_PROOF_MISMATCH": MAX_FAILED_LINK_ATTEMPTS,
        "TOO_MANY_LINK_ATTEMPTS": 40 - MAX_FAILED_LINK_ATTEMPTS,
    }
    async with db.session() as session:
        checked = (
            await session.execute(select(func.count()).where(LinkAttempt.user_id == await demo_user_id(db)))
        ).scalar_one()
    assert checked == MAX_FAILED_LINK_ATTEMPTS


# --- SEC10: one argon2 verification for known and unknown logins --------------------------------------------


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts calls of ``verify_password`` (as the identity service calls it) and of argon2's verify."""
    counts: Counter[str] = Counter()
    original = common.verify_password

    def counting_verify_password(password_hash: str | None, password: str) -> bool:
        counts["verify_password"] += 1
        return original(password_hash, password)

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            counts["argon2"] += 1
            return super().verify(hash, password)

    monkeypatch.setattr(common, "verify_password", counting_verify_password)
    monkeypatch.setattr(passwords, "_hasher", CountingHasher())
    return counts


async def test_SEC10_password_login_verifies_one_hash_for_known_and_unknown_logins(
    api: Any, db: Any, verifications: Counter[str]
) -> None:
    await sql(db, "UPDATE users SET password_hash = NULL WHERE phone = :p", p=SECOND_CUSTOMER[1])  # VK-only
    cases = [
        (DEMO_PHONE, DEMO_PASSWORD, None),  # the cabinet, right password
        ("8 111 111 11 11", "Wrong#pass1", "INVALID_CREDENTIALS"),  # the cabinet, wrong password
        ("+7 (984) 417-37-94", "Wrong#pass1", "INVALID_CREDENTIALS"),  # no such cabinet
        ("nobody@example.ru", "Wrong#pass1", "INVALID_CREDENTIALS"),  # no such confirmed e-mail
        ("not a phone", "Wrong#pass1", "INVALID_CREDENTIALS"),  # neither phone nor e-mail
        (SECOND_CUSTOMER[0], "Wrong#pass1", "INVALID_CREDENTIALS"),  # a cabinet without a password
    ]
    for login, password, error in cases:
        verifications.clear()
        result = await password_login(api, login, password)
        if error is None:
            assert result["userErrors"] == [] and result["tokens"]
        else:
            assert result["userErrors"][0]["code"] == error and result["tokens"] is None
        assert verifications == {"verify_password": 1, "argon2": 1}, login


def test_SEC10_the_dummy_hash_has_the_parameters_of_real_ones() -> None:
    real = passwords.hash_password("Secret#1")
    dummy = passwords.dummy_hash()
    assert dummy.split("$")[:4] == real.split("$")[:4]  # $argon2id$v=19$m=…,t=…,p=…
    assert dummy is passwords.dummy_hash()  # computed once per process
    assert passwords.verify_password(None, "Secret#1") is False


async def test_SEC10_answers_that_tell_whether_a_cabinet_exists_are_rate_limited(api: Any) -> None:
    limit, _ = common.LOOKUP_LIMIT_PER_LOGIN
    for index in range(limit):
        spelling = SPELLINGS[index % len(SPELLINGS)]
        result = (await api.data(REQUEST_LOGIN_CODE, input={"login": spelling}))["requestLoginCode"]
        assert result["userErrors"][0]["code"] == "PHONE_NOT_REGISTERED", spelling
    for spelling in SPELLINGS:
        result = (await api.data(REQUEST_LOGIN_CODE, input={"login": spelling}))["requestLoginCode"]
        assert result["userErrors"][0]["code"] == "RATE_LIMITED", spelling
