"""D3: the receipt (квитанция) PDF of an account for a period, generated on demand and cached in storage.

The PDF lists supplier and bank requisites, the account, address and payer, every service of the period
with volume, tariff and amount, the debt or overpayment carried in, the total due, and one payment QR code
per supplier in the ГОСТ Р 56042-2014 format (``ST00012``: UTF-8). Text is set in DejaVu Sans, shipped in
``services/fonts`` (Bitstream Vera / DejaVu licence, see ``DejaVuSans.LICENSE``), so Cyrillic renders
on any machine.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import segno
from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account
from models.billing import Charge, PeriodBalance, Receipt
from models.branches import Service, Supplier
from models.files import StoredFile
from services.accounts import AccountNotFound
from services.storage import Storage, store_file
from services.unit_of_work import touch

FONT_PATH = Path(__file__).parent / "fonts" / "DejaVuSans.ttf"

ZONE_NAMES = {
    "SINGLE": "",
    "DAY": " (день)",
    "NIGHT": " (ночь)",
    "PEAK": " (пик)",
    "HALF_PEAK": " (полупик)",
}


class ReceiptNotFound(AccountNotFound):
    """No receipt was issued for the account and period."""

    code = "RECEIPT_NOT_FOUND"
    message = "Квитанция за указанный период не найдена"


def _sanitize(value: str) -> str:
    """GOST fields are separated by «|»; the character may not appear inside a value."""
    return " ".join(value.replace("|", " ").split())


def gost_payload(
    supplier: Supplier, account: Account, period: dt.date, amount: Decimal, *, purpose: str | None = None
) -> str:
    """The ГОСТ Р 56042-2014 payment string (UTF-8 variant ``ST00012``) for ``amount`` roubles.

    ``Sum`` is in kopecks; an overpayment or zero due gives ``Sum=0`` (the payer enters an amount).
    """
    kopecks = max(int((amount * 100).quantize(Decimal("1"))), 0)
    fields = [
        ("Name", supplier.name),
        ("PersonalAcc", supplier.settlement_account),
        ("BankName", supplier.bank_name),
        ("BIC", supplier.bic),
        ("CorrespAcc", supplier.correspondent_account),
        ("PayeeINN", supplier.inn),
    ]
    if supplier.kpp:
        fields.append(("KPP", supplier.kpp))
    fields += [
        ("PersAcc", account.number),
        ("LastName", account.owner_last_name),
        ("FirstName", account.owner_first_name),
    ]
    if account.owner_middle_name:
        fields.append(("MiddleName", account.owner_middle_name))
    fields += [
        ("PayerAddress", account.address),
        ("Purpose", purpose or f"Оплата за {period:%m.%Y}, л/с {account.number}"),
        ("PaymPeriod", f"{period:%m.%Y}"),
        ("Sum", str(kopecks)),
    ]
    return "ST00012|" + "|".join(f"{key}={_sanitize(value)}" for key, value in fields)


def _money(value: Decimal) -> str:
    quantized = value.quantize(Decimal("0.01"))
    whole, _, kopecks = f"{abs(quantized):.2f}".partition(".")
    return f"{'-' if quantized < 0 else ''}{int(whole):,}".replace(",", " ") + f",{kopecks}"


@dataclass(slots=True)
class ReceiptData:
    """Everything printed on one receipt."""

    account: Account
    receipt: Receipt
    charges: list[tuple[Charge, Service]]
    suppliers: list[Supplier]
    opening: dict[int, Decimal]  # supplier id → balance carried in (debt +, overpayment −)
    due: dict[int, Decimal]  # supplier id → closing balance of the period


async def receipt_data(session: AsyncSession, account_id: int, period: dt.date) -> ReceiptData:
    """Load what the receipt shows (a handful of statements; a receipt is one document)."""
    account = await session.get(Account, account_id)
    receipt = (
        await session.execute(
            select(Receipt).where(Receipt.account_id == account_id, Receipt.period == period)
        )
    ).scalar_one_or_none()
    if account is None or receipt is None:
        raise ReceiptNotFound(field=["period"])
    charge_rows = (
        await session.execute(
            select(Charge, Service)
            .join(Service, Service.id == Charge.service_id)
            .where(Charge.account_id == account_id, Charge.period == period)
            .order_by(Service.position, Service.name, Charge.zone)
        )
    ).all()
    balances = (
        (
            await session.execute(
                select(PeriodBalance).where(
                    PeriodBalance.account_id == account_id, PeriodBalance.period == period
                )
            )
        )
        .scalars()
        .all()
    )
    supplier_ids = {charge.supplier_id for charge, _ in charge_rows} | {row.supplier_id for row in balances}
    suppliers = list(
        (await session.execute(select(Supplier).where(Supplier.id.in_(supplier_ids)).order_by(Supplier.id)))
        .scalars()
        .all()
    )
    return ReceiptData(
        account=account,
        receipt=receipt,
        charges=[(charge, service) for charge, service in charge_rows],
        suppliers=suppliers,
        opening={row.supplier_id: row.opening for row in balances},
        due={row.supplier_id: row.closing for row in balances},
    )


def render_pdf(data: ReceiptData) -> bytes:
    """The receipt as PDF bytes."""
    account, receipt = data.account, data.receipt
    pdf = FPDF(format="A4")
    pdf.set_title(f"Квитанция {account.number} за {receipt.period:%m.%Y}")
    pdf.set_author("Kabinet")
    pdf.add_font("DejaVu", fname=str(FONT_PATH))
    pdf.add_font("DejaVu", style="B", fname=str(FONT_PATH))  # table headings: one face ships, not a bold one
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    width = pdf.epw

    def line(text: str, size: float = 9, height: float = 5) -> None:
        pdf.set_font("DejaVu", size=size)
        pdf.multi_cell(width, height, text, new_x="LMARGIN", new_y="NEXT")

    line(f"КВИТАНЦИЯ (платежный документ) за {receipt.period:%m.%Y}", size=13, height=8)
    payer = " ".join(
        p for p in (account.owner_last_name, account.owner_first_name, account.owner_middle_name) if p
    )
    line(f"Лицевой счет: {account.number}")
    line(f"Плательщик: {payer}")
    line(f"Адрес: {account.address}")
    if receipt.due_date:
        line(f"Оплатить до: {receipt.due_date:%d.%m.%Y}")
    pdf.ln(2)

    for supplier in data.suppliers:
        line(f"Получатель: {supplier.name}", size=10, height=6)
        requisites = f"ИНН {supplier.inn}" + (f", КПП {supplier.kpp}" if supplier.kpp else "")
        line(f"{requisites}, р/с {supplier.settlement_account}")
        line(f"Банк: {supplier.bank_name}, БИК {supplier.bic}, к/с {supplier.correspondent_account}")
        pdf.ln(1)
        pdf.set_font("DejaVu", size=8)
        columns = (width * 0.40, width * 0.15, width * 0.15, width * 0.15, width * 0.15)
        with pdf.table(col_widths=columns, text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")) as table:
            table.row(("Услуга", "Объем", "Тариф, ₽", "Начислено, ₽", "Перерасчет, ₽"))
            for charge, service in data.charges:
                if charge.supplier_id != supplier.id:
                    continue
                table.row(
                    (
                        f"{service.name}{ZONE_NAMES.get(str(charge.zone), '') if charge.zone else ''}",
                        f"{charge.volume} {service.unit}" if charge.volume is not None else "",
                        f"{charge.rate}" if charge.rate is not None else "",
                        _money(charge.amount),
                        _money(charge.recalculation or Decimal("0")),
                    )
                )
        opening = data.opening.get(supplier.id, Decimal("0"))
        due = data.due.get(supplier.id, Decimal("0"))
        pdf.ln(1)
        if opening > 0:
            line(f"Задолженность на начало периода: {_money(opening)} ₽")
        elif opening < 0:
            line(f"Переплата на начало периода: {_money(opening)} ₽")
        line(f"Итого к оплате получателю: {_money(max(due, Decimal('0')))} ₽", size=10, height=6)
        qr = segno.make(gost_payload(supplier, account, receipt.period, due), encoding="utf-8", error="m")
        image = io.BytesIO()
        qr.save(image, kind="png", scale=4, border=4)
        image.seek(0)
        pdf.image(image, w=45, h=45)
        pdf.ln(3)

    line(f"ВСЕГО К ОПЛАТЕ: {_money(receipt.total_due)} ₽", size=12, height=8)
    return bytes(pdf.output())


async def receipt_pdf(
    session: AsyncSession, storage: Storage, account_id: int, period: dt.date, *, now: dt.datetime
) -> StoredFile:
    """D3: the cached PDF of the receipt, generating and storing it on first use (flushed, not committed)."""
    receipt = (
        await session.execute(
            select(Receipt).where(Receipt.account_id == account_id, Receipt.period == period)
        )
    ).scalar_one_or_none()
    if receipt is None:
        raise ReceiptNotFound(field=["period"])
    if receipt.file_id is not None:
        cached = await session.get(StoredFile, receipt.file_id)
        if cached is not None and storage.exists(cached.storage_key):
            return cached
    data = await receipt_data(session, account_id, period)
    pdf = render_pdf(data)
    stored = await store_file(
        session,
        storage,
        pdf,
        key=f"receipts/{period:%Y/%m}/{account_id}-{receipt.id}-{int(now.timestamp())}.pdf",
        filename=f"kvitanciya-{data.account.number}-{period:%Y-%m}.pdf",
        content_type="application/pdf",
    )
    touch(session, accounts=[account_id])  # the receipt's file
    receipt.file_id = stored.id
    receipt.generated_at = now
    await session.flush()
    return stored
