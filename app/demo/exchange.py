"""The demo data through the billing exchange (issue 18): :func:`app.demo.load` already brings every
billing-owned row in through :func:`services.exchange.importer.import_batch`; ``kabinet demo`` then writes
the billing-owned part of the loaded data (branches, suppliers, services, tariffs with their approving
documents, accounts, meters, charges, balances, receipts, accepted readings) as an exchange set and imports
it again: the rows are unchanged, and the import adds the tariff documents (C4), so
``tariffs { document { url } }`` downloads in the demo.

``python -m app.demo.exchange DIR`` writes the small sample set published in ``docs/exchange/sample``
(the demo customers' accounts, the last two periods) from the database at ``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.db import Database
from app.demo.data import DEMO_ACCOUNT_NUMBER, SECOND_CUSTOMER_ACCOUNT_NUMBER, UNLINKED_ACCOUNT_NUMBER
from app.demo.loader import demo_file_bytes
from services import clock
from services.exchange.importer import ImportReport, import_batch
from services.exchange.writer import assign_billing_ids, exchange_set
from services.periods import add_months, month_start
from services.storage import Storage, local_storage

SAMPLE_ACCOUNTS = (
    DEMO_ACCOUNT_NUMBER,
    "11111112",
    "11111113",
    UNLINKED_ACCOUNT_NUMBER,
    SECOND_CUSTOMER_ACCOUNT_NUMBER,
)


def tariff_document(row: dict[str, Any]) -> tuple[str, bytes] | None:
    """The approving document of a demo tariff: a one-page PDF named after its number and date."""
    if not row.get("document_title"):
        return None
    slug = re.sub(r"[^0-9A-Za-z]+", "-", f"rek-{row['document_number']}-{row['document_date']}").strip("-")
    return f"documents/{slug}.pdf", demo_file_bytes(f"tariffs/{slug}.pdf")


async def demo_set(
    db: Database, storage: Storage, *, accounts: Sequence[str] | None = None, since: dt.date | None = None
) -> dict[str, bytes]:
    """The demo data of ``db`` as an exchange set (billing ids assigned first)."""
    async with db.session() as session:
        await assign_billing_ids(session)
        await session.commit()
        return await exchange_set(
            session, storage=storage, accounts=accounts, since=since, documents=tariff_document
        )


async def load_via_exchange(db: Database, storage: Storage, *, keep: Path | None = None) -> ImportReport:
    """Write the demo data as an exchange set (into ``keep`` when given) and import it."""
    files = await demo_set(db, storage)
    if keep is not None:
        write_set(keep, files)
    async with db.session() as session:
        report = await import_batch(session, files, storage=storage, now=clock.now())
        await session.commit()
    return report


def write_set(directory: Path, files: dict[str, bytes]) -> None:
    """Write a set's files under ``directory``."""
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


async def _sample(directory: Path) -> None:
    db = Database(os.environ["DATABASE_URL"], pool_size=1)
    try:
        since = add_months(month_start(clock.today()), -2)
        write_set(
            directory,
            await demo_set(db, local_storage(Path("/nonexistent")), accounts=SAMPLE_ACCOUNTS, since=since),
        )
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(_sample(Path(sys.argv[1])))
