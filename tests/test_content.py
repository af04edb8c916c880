"""Information sections (I1–I5) through GraphQL on the demo data.

The demo (``app.demo``, built for the run's TODAY): 3 shop categories with 8 items, the FAQ entries of
``app.demo.FAQ``, one survey for everybody (TODAY − 10 days … TODAY + 30 days) with SINGLE, MULTIPLE
and TEXT questions, a current promotion (until TODAY + 40 days) and an expired one, 7 offices with
30-minute slots on the working days of the next two weeks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from app.db import Database
from app.demo import DEMO_PHONE_E164
from app.demo import FAQ as DEMO_FAQ
from app.settings import Settings
from models.appeals import Application, ApplicationKind
from models.content import Appointment, AppointmentStatus, CallbackRequest, ShopItem
from models.notifications import Notification
from services.clock import CLOCK
from tests.client import Api
from tests.conftest import login_as
from tests.dates import MSK, NOW, TODAY

MIDNIGHT = dt.datetime.combine(TODAY, dt.time(0), tzinfo=MSK).isoformat()
"""The start of TODAY in Moscow, as the API writes instants."""
LATER = NOW + dt.timedelta(days=70)
"""A day when neither demo promotion is current any more."""


def at(days: int, hour: int, minute: int = 0) -> str:
    """``hour:minute`` Moscow time ``days`` after TODAY, as the API writes instants."""
    return dt.datetime.combine(TODAY + dt.timedelta(days=days), dt.time(hour, minute), tzinfo=MSK).isoformat()


ADMIN_PHONE = "+75555555555"
SECOND_PHONE = None  # looked up from the demo when needed


def gid(type_name: str, value: int) -> str:
    return str(GlobalID(type_name, str(value)))


async def admin_token(db: Database, settings: Settings) -> str:
    return await login_as(db, settings, ADMIN_PHONE)


async def main_account_id(db: Database) -> int:
    from models.accounts import Account

    async with db.session() as session:
        return (await session.execute(select(Account.id).where(Account.number == "11111111"))).scalar_one()


# ------------------------------------------------------------------------------------------------ I1 shop

SHOP = """{ shopCategories { id name items { id name price description url imageUrl category { name } } } }"""


async def test_I1_shop_lists_categories_with_items_in_constant_statements(
    api: Api, settings: Settings, sql_counter: Any
) -> None:
    CLOCK.pin(NOW)
    with sql_counter() as counted:
        data = await api.data(SHOP)
    categories = data["shopCategories"]
    assert [c["name"] for c in categories] == ["Приборы учёта", "Услуги", "Электротовары"]
    assert sum(len(c["items"]) for c in categories) == 8
    meter = categories[0]["items"][0]
    assert meter["name"] == "Счётчик электроэнергии «Меркурий 201.8» однотарифный"
    assert meter["price"] == "2150.00"
    assert meter["category"]["name"] == "Приборы учёта"
    on_request = next(i for i in categories[1]["items"] if i["name"] == "Опломбировка прибора учёта")
    assert on_request["price"] is None
    assert counted.statements == 3  # categories, items of all categories, categories by id


ORDER = """mutation($input: OrderShopItemInput!) { orderShopItem(input: $input) {
  applicationId userErrors { code message field } } }"""


async def test_I1_order_request_reaches_operators_as_an_application(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    CLOCK.pin(NOW)
    data = await api.data(SHOP)
    item = data["shopCategories"][0]["items"][1]
    account = gid("Account", await main_account_id(db))
    result = (
        await api.data(
            ORDER,
            token=customer_token,
            input={"itemId": item["id"], "accountId": account, "quantity": 2, "comment": "Доставка не нужна"},
        )
    )["orderShopItem"]
    assert result["userErrors"] == []
    application_id = int(GlobalID.from_id(result["applicationId"]).node_id)
    async with db.session() as session:
        row = await session.get(Application, application_id)
        assert row is not None
        assert row.kind is ApplicationKind.FREE_FORM
        assert row.fields["source"] == "SHOP_ORDER"
        assert row.fields["quantity"] == 2
        assert row.fields["total"] == "8780.00"
        assert row.fields["contactPhone"] == DEMO_PHONE_E164
        notes = (
            await session.execute(select(Notification.title).where(Notification.user_id == row.user_id))
        ).scalars()
        assert "Заказ принят" in list(notes)


async def test_I1_order_of_someone_elses_account_or_bad_quantity_is_refused(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    from models.accounts import Account

    async with db.session() as session:
        foreign = (await session.execute(select(Account.id).where(Account.number == "22222222"))).scalar_one()
        item_id = (await session.execute(select(func.min(ShopItem.id)))).scalar_one()
    result = (
        await api.data(
            ORDER,
            token=customer_token,
            input={"itemId": gid("ShopItem", item_id), "accountId": gid("Account", foreign)},
        )
    )["orderShopItem"]
    assert result["applicationId"] is None
    assert result["userErrors"][0]["message"] == "Данный лицевой счет не найден"
    result = (
        await api.data(
            ORDER,
            token=customer_token,
            input={
                "itemId": gid("ShopItem", item_id),
                "accountId": gid("Account", await main_account_id(db)),
                "quantity": 0,
            },
        )
    )["orderShopItem"]
    assert result["userErrors"][0]["code"] == "QUANTITY_INVALID"
    assert result["userErrors"][0]["field"] == ["input", "quantity"]


# ------------------------------------------------------------------------------------------------- I2 FAQ

FAQ = """query($search: String, $category: String) {
  faqEntries(search: $search, category: $category) { id category question answer } faqCategories }"""


async def test_I2_faq_lists_every_entry_by_category(api: Api) -> None:
    data = await api.data(FAQ)
    assert len(data["faqEntries"]) == len(DEMO_FAQ)
    assert data["faqCategories"][0] == "Регистрация и вход"
    assert "Оплата" in data["faqCategories"]
    paying = await api.data(FAQ, category="Оплата")
    assert {entry["category"] for entry in paying["faqEntries"]} == {"Оплата"}
    assert len(paying["faqEntries"]) == sum(1 for entry in DEMO_FAQ if entry[0] == "Оплата")


async def test_I2_faq_search_is_russian_full_text_with_word_forms(api: Api) -> None:
    # «оплатить» (a verb) finds entries that say «оплата», «оплаты» (the noun)
    found = (await api.data(FAQ, search="оплатить"))["faqEntries"]
    questions = [entry["question"] for entry in found]
    assert "Какие способы оплаты доступны?" in questions
    assert all("оплат" in (entry["question"] + entry["answer"]).lower() for entry in found), questions
    # «пароли» finds «пароль»/«паролю»; nonsense finds nothing; punctuation does not break the query
    assert any(
        "пароль" in q["question"].lower() for q in (await api.data(FAQ, search="пароли"))["faqEntries"]
    )
    assert (await api.data(FAQ, search="квазар"))["faqEntries"] == []
    assert (await api.data(FAQ, search='"показания" & ! ('))["faqEntries"] != []


# --------------------------------------------------------------------------------------------- I3 surveys

SURVEYS = """{ surveySection { active surveys { id title open answered answeredAt
  questions { id kind required text options { id text } } } } }"""

ANSWER = """mutation($input: AnswerSurveyInput!) { answerSurvey(input: $input) {
  survey { id answered } userErrors { code message field } } }"""


def _answers(survey: dict[str, Any]) -> list[dict[str, Any]]:
    single, multiple, free = survey["questions"]
    return [
        {"questionId": single["id"], "optionIds": [single["options"][0]["id"]]},
        {"questionId": multiple["id"], "optionIds": [o["id"] for o in multiple["options"][:2]]},
        {"questionId": free["id"], "text": "Добавьте тёмную тему"},
    ]


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_I3_survey_is_answered_once_and_a_second_answer_is_refused(
    api: Api, settings: Settings, customer_token: str, sql_counter: Any
) -> None:
    CLOCK.pin(NOW)
    await api.data("{ me { id } }", token=customer_token)  # warm-up: the session row is read once (SEC6)
    with sql_counter() as counted:
        section = (await api.data(SURVEYS, token=customer_token))["surveySection"]
    assert counted.statements == 4  # surveys, responses, questions, options
    assert section["active"] is True
    (survey,) = section["surveys"]
    assert survey["open"] is True and survey["answered"] is False
    assert [q["kind"] for q in survey["questions"]] == ["SINGLE", "MULTIPLE", "TEXT"]

    first = await api.data(
        ANSWER, token=customer_token, input={"surveyId": survey["id"], "answers": _answers(survey)}
    )
    assert first["answerSurvey"] == {"survey": {"id": survey["id"], "answered": True}, "userErrors": []}

    second = await api.data(
        ANSWER, token=customer_token, input={"surveyId": survey["id"], "answers": _answers(survey)}
    )
    assert second["answerSurvey"]["survey"] is None
    assert second["answerSurvey"]["userErrors"] == [
        {
            "code": "SURVEY_ALREADY_ANSWERED",
            "message": "Вы уже ответили на этот опрос",
            "field": ["input", "surveyId"],
        }
    ]
    again = (await api.data(SURVEYS, token=customer_token))["surveySection"]["surveys"][0]
    assert again["answered"] is True and again["answeredAt"] is not None


async def test_I3_answers_must_fit_their_questions(api: Api, settings: Settings, customer_token: str) -> None:
    CLOCK.pin(NOW)
    (survey,) = (await api.data(SURVEYS, token=customer_token))["surveySection"]["surveys"]
    single, multiple, _ = survey["questions"]
    two = [o["id"] for o in single["options"][:2]]
    bad = await api.data(
        ANSWER,
        token=customer_token,
        input={"surveyId": survey["id"], "answers": [{"questionId": single["id"], "optionIds": two}]},
    )
    assert bad["answerSurvey"]["userErrors"][0]["code"] == "ANSWER_INVALID"
    missing = await api.data(
        ANSWER,
        token=customer_token,
        input={"surveyId": survey["id"], "answers": [{"questionId": single["id"], "optionIds": two[:1]}]},
    )
    assert missing["answerSurvey"]["userErrors"][0]["code"] == "ANSWER_REQUIRED"
    assert missing["answerSurvey"]["userErrors"][0]["field"] == ["input", "answers", "optionIds"]
    assert multiple  # the refused answers stored nothing: a full answer still goes through
    ok = await api.data(
        ANSWER, token=customer_token, input={"surveyId": survey["id"], "answers": _answers(survey)}
    )
    assert ok["answerSurvey"]["userErrors"] == []


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_I3_section_is_inactive_when_no_survey_was_sent(
    api: Api, settings: Settings, customer_token: str
) -> None:
    CLOCK.pin(NOW - dt.timedelta(days=11))  # before the demo survey starts
    assert (await api.data(SURVEYS, token=customer_token))["surveySection"] == {
        "active": False,
        "surveys": [],
    }


CREATE_SURVEY = """mutation($input: CreateSurveyInput!) { createSurvey(input: $input) {
  survey { id title } userErrors { code message field } } }"""


async def test_I3_selected_survey_reaches_only_its_recipients_who_are_notified(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    from models.identity import User

    CLOCK.pin(NOW)
    async with db.session() as session:
        ivanov = (await session.execute(select(User.id).where(User.phone == DEMO_PHONE_E164))).scalar_one()
        other = (
            await session.execute(
                select(User.id).where(User.phone != DEMO_PHONE_E164, User.role == "CUSTOMER").limit(1)
            )
        ).scalar_one()
    created = await api.data(
        CREATE_SURVEY,
        token=await admin_token(db, settings),
        input={
            "title": "Опрос о счётчиках",
            "startsAt": MIDNIGHT,
            "recipientIds": [gid("User", other)],
            "questions": [
                {"kind": "SINGLE", "text": "Есть ли у Вас двухтарифный счётчик?", "options": ["Да", "Нет"]}
            ],
        },
    )
    assert created["createSurvey"]["userErrors"] == []
    titles = [s["title"] for s in (await api.data(SURVEYS, token=customer_token))["surveySection"]["surveys"]]
    assert "Опрос о счётчиках" not in titles
    other_token = await login_as(db, settings, await _phone_of(db, other))
    titles = [s["title"] for s in (await api.data(SURVEYS, token=other_token))["surveySection"]["surveys"]]
    assert "Опрос о счётчиках" in titles
    async with db.session() as session:
        notified = (
            await session.execute(select(Notification.user_id).where(Notification.title == "Новый опрос"))
        ).scalars()
        assert list(notified) == [other]
    assert ivanov != other


async def _phone_of(db: Database, user_id: int) -> str:
    from models.identity import User

    async with db.session() as session:
        return (await session.execute(select(User.phone).where(User.id == user_id))).scalar_one()


# ------------------------------------------------------------------------------------------ I4 promotions

PROMOTIONS = """{ promotionSection { active promotions { id title startsOn endsOn url branch { name } } } }"""


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_I4_only_current_promotions_are_shown(
    api: Api, settings: Settings, customer_token: str
) -> None:
    CLOCK.pin(NOW)
    section = (await api.data(PROMOTIONS, token=customer_token))["promotionSection"]
    assert section["active"] is True
    assert [p["title"] for p in section["promotions"]] == [
        "Передавайте показания вовремя — выигрывайте призы"
    ]
    assert section["promotions"][0]["endsOn"] == (TODAY + dt.timedelta(days=40)).isoformat()
    anonymous = (await api.data(PROMOTIONS))["promotionSection"]
    assert anonymous["active"] is True


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_I4_section_is_inactive_when_no_promotion_is_current(
    api: Api, db: Database, settings: Settings
) -> None:
    CLOCK.pin(LATER)
    customer_token = await login_as(db, settings, DEMO_PHONE_E164)
    assert (await api.data(PROMOTIONS, token=customer_token))["promotionSection"] == {
        "active": False,
        "promotions": [],
    }


SAVE_PROMOTION = """mutation($input: SavePromotionInput!) { savePromotion(input: $input) {
  promotion { id title } userErrors { code message field } } }"""


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_I4_admin_adds_a_promotion_and_customers_see_it(
    api: Api, db: Database, settings: Settings
) -> None:
    CLOCK.pin(LATER)
    customer_token = await login_as(db, settings, DEMO_PHONE_E164)
    saved = await api.data(
        SAVE_PROMOTION,
        token=await admin_token(db, settings),
        input={
            "title": "Весенняя акция",
            "body": "Скидка на лампы.",
            "startsOn": (LATER.date() - dt.timedelta(days=12)).isoformat(),
            "endsOn": (LATER.date() + dt.timedelta(days=28)).isoformat(),
        },
    )
    assert saved["savePromotion"]["userErrors"] == []
    section = (await api.data(PROMOTIONS, token=customer_token))["promotionSection"]
    assert section["active"] is True
    assert [p["title"] for p in section["promotions"]] == ["Весенняя акция"]
    wrong = await api.data(
        SAVE_PROMOTION,
        token=await admin_token(db, settings),
        input={"title": "X", "body": "Y", "startsOn": "2027-03-01", "endsOn": "2027-02-01"},
    )
    assert wrong["savePromotion"]["userErrors"][0]["code"] == "PERIOD_INVALID"


# -------------------------------------------------------------------------------------------- I5 contacts

OFFICES = """{ contacts { hotlinePhone videoCallUrl webConsultantUrl }
  offices { id name address latitude longitude phone services branch { name }
    openingHours { day intervals { opens closes } } } }"""

SLOTS = """query($officeId: ID!, $from: DateTime) { officeSlots(officeId: $officeId, from: $from, days: 14) {
  id startsAt endsAt available office { name } } }"""


async def test_I5_offices_with_map_data_and_hours_in_constant_statements(
    api: Api, settings: Settings, sql_counter: Any
) -> None:
    CLOCK.pin(NOW)
    with sql_counter() as counted:
        data = await api.data(OFFICES)
    assert counted.statements == 2  # offices, their branches
    assert data["contacts"]["hotlinePhone"] == "8 (800) 775-62-62"
    assert data["contacts"]["videoCallUrl"].startswith("https://")
    assert data["contacts"]["webConsultantUrl"].startswith("https://")
    assert len(data["offices"]) == 7
    central = next(o for o in data["offices"] if o["name"] == "Центральный офис обслуживания")
    assert central["address"] == "г. Рязань, ул. Ленина, д. 9"
    assert central["latitude"] == 54.6274 and central["longitude"] == 39.7409
    assert "Оплата без комиссии" in central["services"]
    monday, *_, saturday, _sunday = central["openingHours"]
    assert monday == {"day": "MONDAY", "intervals": [{"opens": "08:00", "closes": "17:00"}]}
    assert saturday == {"day": "SATURDAY", "intervals": []}


async def _slots(api: Api, office_id: str) -> list[dict[str, Any]]:
    return (await api.data(SLOTS, officeId=office_id, **{"from": NOW.isoformat()}))["officeSlots"]


async def _first_office(api: Api) -> str:
    return (await api.data(OFFICES))["offices"][0]["id"]  # type: ignore[no-any-return]


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_I5_slot_list_statement_count_is_constant(
    api: Api, settings: Settings, sql_counter: Any
) -> None:
    CLOCK.pin(NOW)
    office = await _first_office(api)
    with sql_counter() as counted:
        slots = await _slots(api, office)
    # the demo: 14 half-hours (09:00–12:00, 13:00–17:00) on each working day of the 14 days after TODAY;
    # the list covers 14 days from NOW, so the last day counts only the half-hours before NOW's time
    until = NOW + dt.timedelta(days=14)
    expected = [
        starts
        for offset in range(1, 15)
        if (day := TODAY + dt.timedelta(days=offset)).weekday() < 5
        for half_hour in [*range(18, 24), *range(26, 34)]
        if (starts := dt.datetime.combine(day, dt.time(half_hour // 2, 30 * (half_hour % 2)), tzinfo=MSK))
        < until
    ]
    assert len(slots) == len(expected) > 0
    assert all(slot["available"] for slot in slots)
    assert counted.statements == 3  # slots, booked flags, office


BOOK = """mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) {
  appointment { id status topic slot { id startsAt office { name } } }
  userErrors { code message field } } }"""

CANCEL = """mutation($input: CancelAppointmentInput!) { cancelAppointment(input: $input) {
  appointment { id status canceledAt } userErrors { code message field } } }"""

MINE = """{ myAppointments { id status topic slot { startsAt office { name } } } }"""


async def test_I5_book_then_cancel_frees_the_slot(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    CLOCK.pin(NOW)
    office = await _first_office(api)
    slot = (await _slots(api, office))[0]
    booked = (
        await api.data(BOOK, token=customer_token, input={"slotId": slot["id"], "topic": "Замена счётчика"})
    )["bookAppointment"]
    assert booked["userErrors"] == []
    assert booked["appointment"]["status"] == "BOOKED"
    assert booked["appointment"]["slot"]["id"] == slot["id"]
    assert (await _slots(api, office))[0]["available"] is False
    assert [a["topic"] for a in (await api.data(MINE, token=customer_token))["myAppointments"]] == [
        "Замена счётчика"
    ]

    second = await login_as(db, settings, await _second_customer_phone(db))
    taken = (await api.data(BOOK, token=second, input={"slotId": slot["id"], "topic": "Консультация"}))[
        "bookAppointment"
    ]
    assert taken["appointment"] is None
    assert taken["userErrors"][0]["code"] == "SLOT_TAKEN"

    canceled = (
        await api.data(CANCEL, token=customer_token, input={"appointmentId": booked["appointment"]["id"]})
    )["cancelAppointment"]
    assert canceled["userErrors"] == []
    assert canceled["appointment"]["status"] == "CANCELED"
    assert (await _slots(api, office))[0]["available"] is True
    again = (
        await api.data(CANCEL, token=customer_token, input={"appointmentId": booked["appointment"]["id"]})
    )["cancelAppointment"]
    assert again["userErrors"][0]["code"] == "APPOINTMENT_NOT_CANCELABLE"

    rebooked = (await api.data(BOOK, token=second, input={"slotId": slot["id"], "topic": "Консультация"}))[
        "bookAppointment"
    ]
    assert rebooked["userErrors"] == []
    async with db.session() as session:
        titles = list(
            (
                await session.execute(select(Notification.title).order_by(Notification.id.desc()).limit(3))
            ).scalars()
        )
    assert titles == ["Запись на приём", "Запись на приём отменена", "Запись на приём"]


async def test_I5_someone_elses_appointment_cannot_be_cancelled(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    CLOCK.pin(NOW)
    slot = (await _slots(api, await _first_office(api)))[3]
    booked = (await api.data(BOOK, token=customer_token, input={"slotId": slot["id"], "topic": "Вопрос"}))[
        "bookAppointment"
    ]
    second = await login_as(db, settings, await _second_customer_phone(db))
    refused = (await api.data(CANCEL, token=second, input={"appointmentId": booked["appointment"]["id"]}))[
        "cancelAppointment"
    ]
    assert refused["userErrors"][0]["code"] == "APPOINTMENT_NOT_FOUND"
    node = await api.data(
        "query($id: ID!) { node(id: $id) { id } }", token=second, id=booked["appointment"]["id"]
    )
    assert node["node"] is None


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_I5_a_slot_in_the_past_cannot_be_booked(api: Api, db: Database, settings: Settings) -> None:
    slot = (await _slots(api, await _first_office(api)))[0]
    CLOCK.pin(dt.datetime.fromisoformat(slot["startsAt"]) + dt.timedelta(minutes=1))
    customer_token = await login_as(db, settings, DEMO_PHONE_E164)
    refused = (await api.data(BOOK, token=customer_token, input={"slotId": slot["id"], "topic": "Вопрос"}))[
        "bookAppointment"
    ]
    assert refused["userErrors"][0]["code"] == "SLOT_IN_PAST"


async def _second_customer_phone(db: Database) -> str:
    from models.identity import User

    async with db.session() as session:
        return (
            await session.execute(
                select(User.phone)
                .where(User.phone != DEMO_PHONE_E164, User.role == "CUSTOMER")
                .order_by(User.id)
                .limit(1)
            )
        ).scalar_one()


async def test_I5_double_booking_race_exactly_one_succeeds(
    api: Api, db: Database, settings: Settings, customer_token: str, live_server: str
) -> None:
    CLOCK.pin(NOW)
    slot = (await _slots(api, await _first_office(api)))[5]
    second = await login_as(db, settings, await _second_customer_phone(db))

    async def book(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
        response = await client.post(
            f"{live_server}/graphql",
            json={"query": BOOK, "variables": {"input": {"slotId": slot["id"], "topic": "Гонка"}}},
            headers={"authorization": f"Bearer {token}"},
        )
        return response.json()["data"]["bookAppointment"]  # type: ignore[no-any-return]

    for _round in range(3):
        async with httpx.AsyncClient(timeout=10) as one, httpx.AsyncClient(timeout=10) as two:
            results = await asyncio.gather(book(one, customer_token), book(two, second))
        winners = [r for r in results if r["appointment"] is not None]
        losers = [r for r in results if r["appointment"] is None]
        assert len(winners) == 1 and len(losers) == 1, results
        assert losers[0]["userErrors"][0]["code"] == "SLOT_TAKEN"
        async with db.session() as session:
            booked = (
                await session.execute(
                    select(func.count())
                    .select_from(Appointment)
                    .where(Appointment.status == AppointmentStatus.BOOKED)
                )
            ).scalar_one()
        assert booked == 1
        winner_token = customer_token if results[0]["appointment"] else second
        canceled = await api.data(
            CANCEL, token=winner_token, input={"appointmentId": winners[0]["appointment"]["id"]}
        )
        assert canceled["cancelAppointment"]["userErrors"] == []


CALLBACK = """mutation($input: RequestCallbackInput!) { requestCallback(input: $input) {
  callbackRequest { id phone preferredFrom preferredTo topic status } userErrors { code message field } } }"""


@pytest.mark.calendar  # date-dependent: CI runs it again on other days
async def test_I5_callback_request_with_preferred_time(
    api: Api, db: Database, settings: Settings, customer_token: str
) -> None:
    CLOCK.pin(NOW)
    made = (
        await api.data(
            CALLBACK,
            token=customer_token,
            input={
                "preferredFrom": at(1, 14),
                "preferredTo": at(1, 16),
                "topic": "Перерасчёт",
            },
        )
    )["requestCallback"]
    assert made["userErrors"] == []
    assert made["callbackRequest"]["phone"] == DEMO_PHONE_E164
    assert made["callbackRequest"]["status"] == "NEW"
    other_phone = (await api.data(CALLBACK, token=customer_token, input={"phone": "8 (912) 345-67-89"}))[
        "requestCallback"
    ]
    assert other_phone["callbackRequest"]["phone"] == "+79123456789"
    backwards = (
        await api.data(
            CALLBACK,
            token=customer_token,
            input={"preferredFrom": at(1, 16), "preferredTo": at(1, 14)},
        )
    )["requestCallback"]
    assert backwards["userErrors"][0]["code"] == "PERIOD_INVALID"
    mine = await api.data("{ myCallbackRequests { topic } }", token=customer_token)
    assert [c["topic"] for c in mine["myCallbackRequests"]] == [None, "Перерасчёт"]
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(CallbackRequest))).scalar_one() == 2


# ------------------------------------------------------------------------------------------- ADMIN only

SAVE_FAQ = """mutation($input: SaveFaqEntryInput!) { saveFaqEntry(input: $input) {
  entry { id question } userErrors { code message field } } }"""

ADMIN_MUTATIONS: list[tuple[str, dict[str, Any]]] = [
    (SAVE_FAQ, {"category": "Оплата", "question": "Q?", "answer": "A."}),
    (
        """mutation($input: SaveShopCategoryInput!) {
  saveShopCategory(input: $input) { category { id } } }""",
        {"name": "Новое"},
    ),
    (SAVE_PROMOTION, {"title": "T", "body": "B", "startsOn": TODAY.isoformat()}),
    (
        CREATE_SURVEY,
        {"title": "T", "startsAt": MIDNIGHT, "questions": [{"kind": "TEXT", "text": "?"}]},
    ),
]


async def test_content_mutations_are_admin_only(api: Api, settings: Settings, customer_token: str) -> None:
    CLOCK.pin(NOW)
    for mutation, payload in ADMIN_MUTATIONS:
        body = await api.gql(mutation, token=customer_token, input=payload)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
        anonymous = await api.gql(mutation, input=payload)
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", anonymous
    hidden = await api.gql("{ shopItems(includeInactive: true) { id } }", token=customer_token)
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_admin_manages_faq_and_shop_and_search_sees_new_entries(
    api: Api, db: Database, settings: Settings
) -> None:
    CLOCK.pin(NOW)
    token = await admin_token(db, settings)
    saved = (
        await api.data(
            SAVE_FAQ,
            token=token,
            input={
                "category": "Оплата",
                "question": "Можно ли оплатить наличными?",
                "answer": "Да, в офисах обслуживания без комиссии.",
            },
        )
    )["saveFaqEntry"]
    assert saved["userErrors"] == []
    found = [e["question"] for e in (await api.data(FAQ, search="наличные"))["faqEntries"]]
    assert found == ["Можно ли оплатить наличными?"]
    empty = (
        await api.data(SAVE_FAQ, token=token, input={"category": "Оплата", "question": " ", "answer": "A"})
    )["saveFaqEntry"]
    assert empty["userErrors"][0]["field"] == ["input", "question"]
    deleted = await api.data(
        "mutation($input: DeleteFaqEntryInput!) { deleteFaqEntry(input: $input) { deleted } }",
        token=token,
        input={"id": saved["entry"]["id"]},
    )
    assert deleted["deleteFaqEntry"]["deleted"] is True
    assert (await api.data(FAQ, search="наличные"))["faqEntries"] == []

    categories = (await api.data(SHOP))["shopCategories"]
    item = categories[2]["items"][0]
    off = await api.data(
        """mutation($input: SaveShopItemInput!) { saveShopItem(input: $input) {
          item { id active } userErrors { code } } }""",
        token=token,
        input={"id": item["id"], "categoryId": categories[2]["id"], "name": item["name"], "active": False},
    )
    assert off["saveShopItem"] == {"item": {"id": item["id"], "active": False}, "userErrors": []}
    names = [i["name"] for c in (await api.data(SHOP))["shopCategories"] for i in c["items"]]
    assert item["name"] not in names
    assert (await api.data("query($id: ID!) { node(id: $id) { id } }", id=item["id"]))["node"] is None
    everything = await api.data("{ shopItems(includeInactive: true) { id } }", token=token)
    assert len(everything["shopItems"]) == 8


async def test_admin_opens_slots_and_offices(api: Api, db: Database, settings: Settings) -> None:
    CLOCK.pin(NOW)
    token = await admin_token(db, settings)
    branch = (await api.data("{ branches { id } }"))["branches"][0]["id"]
    office = (
        await api.data(
            """mutation($input: SaveOfficeInput!) { saveOffice(input: $input) {
              office { id name openingHours { day intervals { opens closes } } }
              userErrors { code field } } }""",
            token=token,
            input={
                "branchId": branch,
                "name": "Новый офис",
                "address": "г. Рязань, ул. Новая, д. 1",
                "latitude": "54.6",
                "longitude": "39.7",
                "openingHours": [{"day": "MONDAY", "intervals": ["09:00-13:00", "14:00-18:00"]}],
            },
        )
    )["saveOffice"]
    assert office["userErrors"] == []
    assert office["office"]["openingHours"][0]["intervals"] == [
        {"opens": "09:00", "closes": "13:00"},
        {"opens": "14:00", "closes": "18:00"},
    ]
    added = (
        await api.data(
            """mutation($input: AddOfficeSlotsInput!) { addOfficeSlots(input: $input) {
              slots { id available } userErrors { code } } }""",
            token=token,
            input={
                "officeId": office["office"]["id"],
                "slots": [{"startsAt": at(6, 9), "endsAt": at(6, 9, 30)}],
            },
        )
    )["addOfficeSlots"]
    assert added["userErrors"] == [] and added["slots"][0]["available"] is True
    assert len(await _slots(api, office["office"]["id"])) == 1
