"""Input rules declared next to the input types (schema/rules.py), enforced before any service runs
(issue 16), and the manual's forms made complete: C2 requisites typed, F2 contacts validated, A8 text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from models.appeals import Appeal, Application
from models.identity import AuthSession
from tests.client import Api
from tests.conftest import login_as
from tests.test_appeals import ANSWER, OPERATOR_PHONE, SUBMIT, main_account
from tests.test_uploads import UPLOAD_DOCUMENT

CREATE_APPEAL = """mutation($input: CreateAppealInput!) { createAppeal(input: $input) {
  appeal { id phone email } userErrors { code message field } } }"""
DRAFT = "{ appealDraft { account { id } supplier { id } fullName phone email } }"
LOGIN = """mutation($input: LoginWithPasswordInput!) { loginWithPassword(input: $input) {
  tokens { accessToken } userErrors { code message field } } }"""
RENAME = """mutation($input: RenameAccountInput!) { renameAccount(input: $input) {
  account { displayName } userErrors { code message field } } }"""
DELIVERY = """mutation($input: SetReceiptDeliveryInput!) { setReceiptDelivery(input: $input) {
  account { receiptEmail } userErrors { code message field } } }"""
PAYMENT_FORM = "{ paymentForm { accounts { account { id } lines { supplier { id } } } } }"
CREATE_PAYMENT = """mutation($input: CreatePaymentInput!) { createPayment(input: $input) {
  payment { id } userErrors { code message field } } }"""
REQUISITES = """mutation($input: RequestRequisitesChangeInput!) { requestRequisitesChange(input: $input) {
  application { id fields } userErrors { code message field } } }"""
REQUEST_CODE = """mutation($input: RequestCodeInput!) { requestPasswordReset(input: $input) {
  userErrors { code message field } } }"""


async def count(db: Any, model: Any) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def appeal_input(api: Api, token: str, **changes: Any) -> dict[str, Any]:
    draft = (await api.data(DRAFT, token=token))["appealDraft"]
    values = {
        "accountId": draft["account"]["id"],
        "supplierId": draft["supplier"]["id"],
        "topic": "CHARGES",
        "text": "Прошу проверить начисления.",
        "fullName": draft["fullName"],
        "phone": draft["phone"],
        "email": draft["email"],
    }
    return {**values, **changes}


async def create_appeal(api: Api, token: str, **changes: Any) -> dict[str, Any]:
    body = await api.data(CREATE_APPEAL, token=token, input=await appeal_input(api, token, **changes))
    return body["createAppeal"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- NUL and other unstorable characters


@pytest.mark.parametrize("field", ["text", "fullName", "topic"])
async def test_F2_nul_character_is_a_user_error_and_nothing_is_stored(
    api: Api, customer_token: str, db: Any, field: str
) -> None:
    before = await count(db, Appeal)
    payload = await create_appeal(api, customer_token, **{field: "Прошу\x00проверить"})
    assert payload["appeal"] is None
    assert payload["userErrors"] == [
        {
            "code": "INVALID_CHARACTER",
            "message": "Поле содержит недопустимый символ.",
            "field": ["input", field],
        }
    ]
    assert await count(db, Appeal) == before


async def test_A3_nul_in_device_name_at_login_is_a_user_error(api: Api, db: Any) -> None:
    before = await count(db, AuthSession)
    body = await api.data(
        LOGIN, input={"login": "+7 (111) 111-11-11", "password": "Ivanov#2026", "deviceName": "ph\x00ne"}
    )
    assert body["loginWithPassword"]["tokens"] is None
    assert body["loginWithPassword"]["userErrors"][0]["code"] == "INVALID_CHARACTER"
    assert body["loginWithPassword"]["userErrors"][0]["field"] == ["input", "deviceName"]
    assert await count(db, AuthSession) == before


async def test_B3_nul_in_account_name_is_a_user_error(api: Api, customer_token: str) -> None:
    account = await main_account(api, customer_token)
    body = await api.data(RENAME, token=customer_token, input={"accountId": account, "name": "Да\x00ча"})
    assert body["renameAccount"]["account"] is None
    assert body["renameAccount"]["userErrors"][0]["code"] == "INVALID_CHARACTER"


async def test_F2_lone_surrogate_is_a_user_error_not_a_500(api: Api, customer_token: str) -> None:
    query = json.dumps(CREATE_APPEAL)
    raw = '{"query": ' + query + ', "variables": {"input": {"topic": "CHARGES", "text": "\\ud800"}}}'
    response = await api.client.post(
        "/graphql",
        content=raw.encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {customer_token}"},
    )
    assert response.status_code == 200
    errors = response.json()["data"]["createAppeal"]["userErrors"]
    assert errors[0] == {
        "code": "INVALID_CHARACTER",
        "message": "Поле содержит недопустимый символ.",
        "field": ["input", "text"],
    }


# ---------------------------------------------------------------- longer than the column


async def test_A3_device_name_longer_than_its_column_is_a_user_error(api: Api) -> None:
    body = await api.data(
        LOGIN, input={"login": "+7 (111) 111-11-11", "password": "Ivanov#2026", "deviceName": "x" * 129}
    )
    assert body["loginWithPassword"]["userErrors"] == [
        {"code": "TOO_LONG", "message": "Не более 128 символов.", "field": ["input", "deviceName"]}
    ]


async def test_J5_receipt_email_longer_than_its_column_is_a_user_error(api: Api, customer_token: str) -> None:
    account = await main_account(api, customer_token)
    email = "a" * 250 + "@bk.ru"
    body = await api.data(
        DELIVERY, token=customer_token, input={"accountId": account, "electronic": True, "email": email}
    )
    assert body["setReceiptDelivery"]["userErrors"] == [
        {"code": "TOO_LONG", "message": "Не более 254 символов.", "field": ["input", "email"]}
    ]


async def payment_input(api: Api, token: str, amount: str, **changes: Any) -> dict[str, Any]:
    form = (await api.data(PAYMENT_FORM, token=token))["paymentForm"]["accounts"][0]
    return {
        "accountId": form["account"]["id"],
        "lines": [{"supplierId": form["lines"][0]["supplier"]["id"], "amount": amount}],
        "method": "CARD",
        "acceptRules": True,
        "idempotencyKey": "6f1c0f9e-3b0a-4c59-9a51-0c4f0f8d2a11",
        **changes,
    }


async def test_D5_receipt_email_longer_than_its_column_is_a_user_error(api: Api, customer_token: str) -> None:
    variables = await payment_input(api, customer_token, "100.00", receiptEmail="b" * 300 + "@bk.ru")
    body = await api.data(CREATE_PAYMENT, token=customer_token, input=variables)
    assert body["createPayment"]["payment"] is None
    assert body["createPayment"]["userErrors"] == [
        {"code": "TOO_LONG", "message": "Не более 254 символов.", "field": ["input", "receiptEmail"]}
    ]


@pytest.mark.parametrize("amount", ["1e30", "1E+999999", "-1e30"])
async def test_D5_absurd_amounts_are_a_clean_error(api: Api, customer_token: str, amount: str) -> None:
    variables = await payment_input(api, customer_token, amount)
    response = await api.post(CREATE_PAYMENT, {"input": variables}, customer_token)
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    errors = body["data"]["createPayment"]["userErrors"]
    assert [(error["code"], error["field"]) for error in errors] == [
        ("OUT_OF_RANGE", ["input", "lines", "0", "amount"])
    ]


# ---------------------------------------------------------------- free text above the documented maximum


async def test_F2_a_million_character_appeal_is_refused(api: Api, customer_token: str, db: Any) -> None:
    before = await count(db, Appeal)
    # a million Cyrillic characters are 2 MB: the request itself is over KABINET_MAX_REQUEST_BYTES
    million = await appeal_input(api, customer_token, text="я" * 1_000_000)
    huge = await api.post(CREATE_APPEAL, {"input": million}, customer_token)
    assert huge.status_code == 413 and huge.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    # within the request limit, the field's own rule answers
    payload = await create_appeal(api, customer_token, text="я" * 400_000)
    assert payload["userErrors"] == [
        {"code": "TOO_LONG", "message": "Не более 5000 символов.", "field": ["input", "text"]}
    ]
    assert await count(db, Appeal) == before
    accepted = await create_appeal(api, customer_token, text="я" * 5000)
    assert accepted["userErrors"] == []


async def test_F2_a_5000_character_full_name_is_refused(api: Api, customer_token: str) -> None:
    payload = await create_appeal(api, customer_token, fullName="Иванов" * 834)
    assert payload["userErrors"] == [
        {"code": "TOO_LONG", "message": "Не более 100 символов.", "field": ["input", "fullName"]}
    ]


async def test_G3_application_text_above_the_maximum_is_refused(
    api: Api, customer_token: str, db: Any
) -> None:
    before = await count(db, Application)
    account = await main_account(api, customer_token)
    body = await api.gql(
        SUBMIT,
        token=customer_token,
        input={"kind": "FREE_FORM", "accountId": account, "text": "т" * 5001, "consent": True},
    )
    assert body["data"]["submitApplication"]["userErrors"][0]["code"] == "TOO_LONG"
    assert body["data"]["submitApplication"]["userErrors"][0]["field"] == ["input", "text"]
    assert await count(db, Application) == before


async def test_G2_document_title_above_the_maximum_is_refused(api: Api, customer_token: str) -> None:
    account = await main_account(api, customer_token)
    body = await api.gql(
        UPLOAD_DOCUMENT,
        token=customer_token,
        input={"accountId": account, "type": "OTHER", "title": "T" * 201},
    )
    assert body["data"]["uploadDocument"]["userErrors"] == [
        {"code": "TOO_LONG", "message": "Не более 200 символов.", "field": ["input", "title"]}
    ]


async def test_F1_operator_answer_above_the_maximum_is_refused(
    api: Api, customer_token: str, db: Any, settings: Any
) -> None:
    appeal = (await create_appeal(api, customer_token))["appeal"]
    operator = await login_as(db, settings, OPERATOR_PHONE)
    body = await api.data(ANSWER, token=operator, input={"id": appeal["id"], "text": "ответ " * 1000})
    assert body["answerRequest"]["userErrors"] == [
        {"code": "TOO_LONG", "message": "Не более 5000 символов.", "field": ["input", "text"]}
    ]
    async with db.session() as session:
        row = (await session.execute(select(Appeal).order_by(Appeal.id.desc()).limit(1))).scalar_one()
        assert row.answer is None


def test_rules_are_shown_in_the_field_descriptions() -> None:
    from schema.schema import export_sdl

    sdl = export_sdl()
    assert '"""Text of the appeal. At most 5000 characters."""' in sdl
    assert "Name of the device, for the session list. At most 128 characters." in sdl


# ---------------------------------------------------------------- C2 requisites have types and ranges


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ROOMS", "abc"),
        ("ROOMS", "-2"),
        ("ROOMS", "51"),
        ("TOTAL_AREA", "-5"),
        ("TOTAL_AREA", "0"),
        ("TOTAL_AREA", "10000.01"),
        ("LIVING_AREA", "много"),
        ("OWNERS_COUNT", "1.5"),
        ("OWNERS_COUNT", "0"),
        ("STOVE_TYPE", "NUCLEAR"),
        ("ELECTRIC_HEATING", "maybe"),
    ],
)
async def test_C2_impossible_requisite_values_are_refused(
    api: Api, customer_token: str, db: Any, field: str, value: str
) -> None:
    before = await count(db, Application)
    account = await main_account(api, customer_token)
    body = await api.data(
        REQUISITES,
        token=customer_token,
        input={"accountId": account, "changes": [{"field": field, "newValue": value}], "consent": True},
    )
    errors = body["requestRequisitesChange"]["userErrors"]
    assert [(error["code"], error["field"]) for error in errors] == [
        ("OUT_OF_RANGE", ["input", "changes", "0", "newValue"])
    ]
    assert errors[0]["message"]
    assert await count(db, Application) == before


async def test_C2_empty_requisite_value_is_required(api: Api, customer_token: str) -> None:
    account = await main_account(api, customer_token)
    body = await api.data(
        REQUISITES,
        token=customer_token,
        input={"accountId": account, "changes": [{"field": "ROOMS", "newValue": ""}], "consent": True},
    )
    assert body["requestRequisitesChange"]["userErrors"] == [
        {
            "code": "REQUIRED",
            "message": "Поле обязательно для заполнения",
            "field": ["input", "changes", "0", "newValue"],
        }
    ]


async def test_C2_living_area_above_total_area_is_refused(api: Api, customer_token: str) -> None:
    account = await main_account(api, customer_token)
    changes = [{"field": "TOTAL_AREA", "newValue": "40"}, {"field": "LIVING_AREA", "newValue": "45,5"}]
    body = await api.data(
        REQUISITES, token=customer_token, input={"accountId": account, "changes": changes, "consent": True}
    )
    assert body["requestRequisitesChange"]["userErrors"] == [
        {
            "code": "OUT_OF_RANGE",
            "message": "Жилая площадь не может быть больше общей.",
            "field": ["input", "changes", "1", "newValue"],
        }
    ]


async def test_C2_valid_requisites_are_normalized(api: Api, customer_token: str) -> None:
    account = await main_account(api, customer_token)
    changes = [
        {"field": "TOTAL_AREA", "newValue": "54,3"},
        {"field": "LIVING_AREA", "newValue": "38"},
        {"field": "STOVE_TYPE", "newValue": "electric"},
        {"field": "ELECTRIC_HEATING", "newValue": "true"},
        {"field": "OWNERS_COUNT", "newValue": "2"},
    ]
    body = await api.data(
        REQUISITES, token=customer_token, input={"accountId": account, "changes": changes, "consent": True}
    )
    payload = body["requestRequisitesChange"]
    assert payload["userErrors"] == []
    assert [change["newValue"] for change in payload["application"]["fields"]["changes"]] == [
        "54.3",
        "38",
        "ELECTRIC",
        "да",
        "2",
    ]


# ---------------------------------------------------------------- F2 contacts are validated


async def test_F2_appeal_phone_and_email_are_validated_and_normalized(
    api: Api, customer_token: str, db: Any
) -> None:
    before = await count(db, Appeal)
    bad = await create_appeal(api, customer_token, phone="12", email="not an e-mail")
    assert [error["field"] for error in bad["userErrors"]] == [["input", "phone"], ["input", "email"]]
    assert await count(db, Appeal) == before
    good = await create_appeal(api, customer_token, phone="8 (910) 123-45-67", email="Ivanov@BK.ru")
    assert good["userErrors"] == []
    assert (good["appeal"]["phone"], good["appeal"]["email"]) == ("+79101234567", "ivanov@bk.ru")


# ---------------------------------------------------------------- A8 help line


async def test_A8_unknown_phone_message_gives_the_help_line(api: Api) -> None:
    body = await api.data(REQUEST_CODE, input={"login": "+7 (999) 000-00-01"})
    errors = body["requestPasswordReset"]["userErrors"]
    assert errors[0]["code"] == "PHONE_NOT_REGISTERED"
    assert "8 (800) 775-62-62" in errors[0]["message"]


def test_every_text_input_documents_its_maximum() -> None:
    """Issue 16: each String argument and input field of queries and mutations says its maximum length."""
    from graphql import GraphQLInputObjectType, GraphQLObjectType, GraphQLString, get_named_type

    from schema.schema import build_schema

    graphql_schema = build_schema()._schema
    undocumented = []
    for name, kind in graphql_schema.type_map.items():
        if name.startswith("__"):
            continue
        places: list[tuple[str, Any]] = []
        if isinstance(kind, GraphQLInputObjectType):
            places = [(f"{name}.{field}", value) for field, value in kind.fields.items()]
        elif isinstance(kind, GraphQLObjectType) and kind is not graphql_schema.subscription_type:
            places = [
                (f"{name}.{field}({arg})", value)
                for field, definition in kind.fields.items()
                for arg, value in definition.args.items()
            ]
        undocumented += [
            where
            for where, value in places
            if get_named_type(value.type) is GraphQLString and "At most" not in (value.description or "")
        ]
    assert undocumented == []
