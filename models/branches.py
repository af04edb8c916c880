"""Organization: suppliers (who bills), branches (филиалы, where accounts live) and services."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampsMixin


class Supplier(IdMixin, TimestampsMixin, Base):
    """A company that bills services; its bank details go on receipts and into payment QR codes."""

    __tablename__ = "suppliers"
    billing_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the key in exchange files

    name: Mapped[str] = mapped_column(String(255))
    short_name: Mapped[str | None] = mapped_column(String(128))
    inn: Mapped[str] = mapped_column(String(12), unique=True)  # taxpayer number (ИНН)
    kpp: Mapped[str | None] = mapped_column(String(9))  # tax registration reason code (КПП)
    bank_name: Mapped[str] = mapped_column(String(255))
    bic: Mapped[str] = mapped_column(String(9))  # bank identifier (БИК)
    correspondent_account: Mapped[str] = mapped_column(String(20))  # к/с (CorrespAcc)
    settlement_account: Mapped[str] = mapped_column(String(20))  # р/с (PersonalAcc in the GOST QR)
    address: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))


class Branch(IdMixin, TimestampsMixin, Base):
    """A branch (филиал), e.g. «Скопинское отделение»; fixes the monthly meter-reading window."""

    __tablename__ = "branches"
    billing_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the key in exchange files

    name: Mapped[str] = mapped_column(String(255), unique=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    time_zone: Mapped[str] = mapped_column(  # IANA name; "today" and the window are computed in it
        String(64), default="Europe/Moscow", server_default="Europe/Moscow"
    )
    # days of month (inclusive) when readings are accepted, e.g. 15..25 (E3)
    reading_window_start_day: Mapped[int] = mapped_column(SmallInteger)
    reading_window_end_day: Mapped[int] = mapped_column(SmallInteger)
    address: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    video_consultation_url: Mapped[str | None] = mapped_column(Text)  # F4, I5
    position: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))  # list order

    __table_args__ = (
        CheckConstraint(
            "reading_window_start_day BETWEEN 1 AND 31 AND reading_window_end_day BETWEEN 1 AND 31",
            name="reading_window_days",
        ),
    )


class Service(IdMixin, Base):
    """A billed service (electricity, cold water, heating, …); each is billed by one supplier."""

    __tablename__ = "services"
    billing_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the key in exchange files

    code: Mapped[str] = mapped_column(String(32), unique=True)  # e.g. ELECTRICITY, WATER_COLD, HEATING
    name: Mapped[str] = mapped_column(String(255))
    unit: Mapped[str] = mapped_column(String(16))  # e.g. кВт·ч, м³, Гкал
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))  # list order
