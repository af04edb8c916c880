"""Receipts (D3): a PDF per account and period, generated on demand and cached, with Cyrillic text and a
ГОСТ Р 56042-2014 payment QR code that decodes to the expected string; served by signed URLs only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pypdfium2
import pytest
import zxingcpp
from sqlalchemy import select

from models.billing import Receipt
from tests.dates import mmyyyy, period
from tests.test_accounts import gid, seed_accounts

pytestmark = pytest.mark.calendar  # date-dependent: CI runs it again on other days (README, Tests)

RECEIPT = """query($id: ID!, $period: YearMonth!) { node(id: $id) { ... on Account {
  receipt(period: $period) { period totalDue dueDate download { url expiresAt } } } } }"""


async def download(api: Any, token: str, account_id: int, period: str) -> bytes:
    data = await api.data(RECEIPT, token=token, id=gid("Account", account_id), period=period)
    receipt = data["node"]["receipt"]
    assert receipt["totalDue"] == "525.00"
    response = await api.client.get(urlsplit(receipt["download"]["url"]).path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    return response.content


def decode_qr_codes(pdf: bytes) -> list[str]:
    document = pypdfium2.PdfDocument(pdf)
    found = []
    for page in document:
        image = page.render(scale=3).to_pil()
        found += [result.bytes.decode("utf-8") for result in zxingcpp.read_barcodes(image)]
    return found


def page_text(pdf: bytes) -> str:
    document = pypdfium2.PdfDocument(pdf)
    return "\n".join(page.get_textpage().get_text_range() for page in document)


async def test_D3_receipt_pdf_has_cyrillic_text_and_a_gost_payment_qr_code(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    pdf = await download(api, customer_token, seeded.account_ids[0], period(-1))
    assert pdf.startswith(b"%PDF")
    text = page_text(pdf)
    assert "КВИТАНЦИЯ" in text and "Петров Петр Петрович" in text and "г. Рязань, ул. Тестовая" in text
    assert "Электроэнергия" in text and "Холодная вода" in text and "525,00" in text
    codes = decode_qr_codes(pdf)
    energy = next(code for code in codes if "Тестэнерго" in code)
    fields = dict(part.split("=", 1) for part in energy.split("|")[1:])
    assert energy.startswith("ST00012|Name=ПАО «Тестэнерго ")
    assert fields["PersonalAcc"] == "40702810353000000001"
    assert fields["BankName"] == "ПАО Сбербанк"
    assert fields["BIC"] == "046126614"
    assert fields["CorrespAcc"] == "30101810500000000614"
    assert fields["KPP"] == "623401001"
    assert fields["PersAcc"] == seeded.numbers[0]
    assert fields["LastName"] == "Петров"
    assert fields["PaymPeriod"] == mmyyyy(-1)
    assert fields["Sum"] == "62500"  # 625.00 ₽ due to this supplier, in kopecks
    water = next(code for code in codes if "Водоканал" in code)
    assert water.endswith(f"|PaymPeriod={mmyyyy(-1)}|Sum=0")  # overpayment: nothing due


async def test_D3_receipt_is_generated_once_and_cached(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings)
    first = await download(api, customer_token, seeded.account_ids[0], period(-2))
    async with db.session() as session:
        receipt = (
            await session.execute(
                select(Receipt).where(Receipt.account_id == seeded.account_ids[0]).limit(100)
            )
        ).scalars()
        cached = {row.period.isoformat(): row.file_id for row in receipt}
    assert cached[f"{period(-2)}-01"] is not None and cached[f"{period(-3)}-01"] is None
    second = await download(api, customer_token, seeded.account_ids[0], period(-2))
    assert second == first
    async with db.session() as session:
        again = (
            await session.execute(
                select(Receipt.file_id).where(
                    Receipt.account_id == seeded.account_ids[0], Receipt.period == receipt_period(period(-2))
                )
            )
        ).scalar_one()
    assert again == cached[f"{period(-2)}-01"]


def receipt_period(value: str) -> Any:
    import datetime as dt

    return dt.date.fromisoformat(f"{value}-01")


async def test_D3_no_receipt_for_a_period_is_null_and_other_peoples_receipts_are_hidden(
    api: Any, db: Any, settings: Any, customer_token: str
) -> None:
    seeded = await seed_accounts(db, settings, months=2)
    data = await api.data(
        RECEIPT, token=customer_token, id=gid("Account", seeded.account_ids[0]), period=period(-10)
    )
    assert data["node"]["receipt"] is None
    foreign = await seed_accounts(db, settings, link_to=None)
    hidden = await api.data(
        RECEIPT, token=customer_token, id=gid("Account", foreign.account_ids[0]), period=period(-1)
    )
    assert hidden["node"] is None


async def test_D3_demo_account_receipt_qr_decodes_to_the_gost_string(api: Any, customer_token: str) -> None:
    data = await api.data(
        "{ accounts { edges { node { number currentReceipt { period download { url } } "
        f'balanceHistory(from: "{period(-1)}") {{ suppliers {{ closing supplier {{ inn }} }} }} }} }} }} }}',
        token=customer_token,
    )
    demo = next(edge["node"] for edge in data["accounts"]["edges"] if edge["node"]["number"] == "11111111")
    assert demo["currentReceipt"]["period"] == period(-1)
    due = next(
        line["closing"]
        for line in demo["balanceHistory"][0]["suppliers"]
        if line["supplier"]["inn"] == "6227004515"
    )
    kopecks = max(int(Decimal(due) * 100), 0)
    response = await api.client.get(urlsplit(demo["currentReceipt"]["download"]["url"]).path)
    assert response.status_code == 200
    assert "Иванов Иван Иванович" in page_text(response.content)
    expected = (
        "ST00012|Name=Публичное акционерное общество «Рязанская энергетическая сбытовая компания»"
        "|PersonalAcc=40702810753000012345|BankName=Рязанское отделение № 8606 ПАО Сбербанк|BIC=046126699"
        "|CorrespAcc=30101810800000000699|PayeeINN=6227004515|KPP=622701001|PersAcc=11111111"
        "|LastName=Иванов|FirstName=Иван|MiddleName=Иванович"
        "|PayerAddress=г. Рязань, ул. Почтовая, д. 61, кв. 95"
        f"|Purpose=Оплата за {mmyyyy(-1)}, л/с 11111111|PaymPeriod={mmyyyy(-1)}|Sum={kopecks}"
    )
    assert expected in decode_qr_codes(response.content)
