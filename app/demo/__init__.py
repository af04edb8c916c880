"""The demo data set (tooling, not domain): what ``kabinet serve`` shows on first start and what tests and
benchmarks run against.

- :mod:`app.demo.data` — the fictitious people, accounts, suppliers, tariffs and content, and their logins;
- :mod:`app.demo.loader` — loads the core set (:func:`load`); billing's data of it only through the billing
  import: the master data (suppliers, branches, services, tariffs, core accounts, their services and
  meters, :func:`app.demo.loader.reference_set`), then the history (charges, balances, receipts, accepted
  readings acknowledging the cabinet's) after the cabinet's own rows;
- :mod:`app.demo.synthetic` — appends synthetic accounts for benchmarks, generated inside PostgreSQL, their
  billing data written as exchange files by PostgreSQL and imported the same way;
- :mod:`app.demo.exchange` — writes the billing-owned part of the data as a billing exchange set and
  imports it through :mod:`services.exchange` (what ``kabinet demo`` runs after loading).
"""

from app.demo.data import (
    BRANCHES,
    DEMO_ACCOUNT_NUMBER,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_PHONE,
    DEMO_PHONE_E164,
    DEMO_STAFF,
    SECOND_CUSTOMER,
    SECOND_CUSTOMER_ACCOUNT_NUMBER,
    UNLINKED_ACCOUNT_NUMBER,
    e164,
    synthetic_account_number,
    synthetic_user_of_account,
    synthetic_user_phone,
)
from app.demo.loader import FAQ, demo_file_bytes, load, staff_password_hashes

__all__ = [
    "BRANCHES",
    "DEMO_ACCOUNT_NUMBER",
    "DEMO_EMAIL",
    "DEMO_PASSWORD",
    "DEMO_PHONE",
    "DEMO_PHONE_E164",
    "DEMO_STAFF",
    "FAQ",
    "SECOND_CUSTOMER",
    "SECOND_CUSTOMER_ACCOUNT_NUMBER",
    "UNLINKED_ACCOUNT_NUMBER",
    "demo_file_bytes",
    "e164",
    "load",
    "staff_password_hashes",
    "synthetic_account_number",
    "synthetic_user_of_account",
    "synthetic_user_phone",
]
