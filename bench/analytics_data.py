"""A fast, set-based data generator for the analytics benchmark (issue 17).

``services.demo.load`` writes synthetic accounts row by row through the ORM (48 005 accounts took 26
minutes on the shared VM). Analytics needs volume, not realism of each row, so this module loads the demo
core set (reference data, staff, the analyst) with ``demo.load(extra_accounts=0)`` and then generates
``N`` accounts with their history in SQL: one ``INSERT … SELECT … FROM generate_series`` per table,
executed by PostgreSQL itself (no row crosses the network).

Per account ``g`` (1…N), over the 36 closed months before today's month:

- a customer owns two accounts (``N/2`` users, registered over the three years), e-receipts on for every
  third account; branches round-robin;
- charges: electricity every month (DAY + NIGHT zones for every 4th account, else SINGLE, kWh), cold
  water for even accounts, heating for every 3rd;
- period balances per supplier billed (every 5th account-month closes in debt);
- one electricity meter; readings (one per zone) for 2 accounts in 3, channel by ``g % 10``;
- payments: every other user-month one payment (CARD or SBP, 1 in 17 FAILED) allocated to both accounts;
- appeals for every 25th account and applications for every 40th, twice a year, mostly answered with a
  first-answer time between 1 and 96 hours;
- login sessions for 2 users in 3 every month (WEB or MOBILE).

Explicit ids (``OVERRIDING SYSTEM VALUE``) after the current maximum, identities moved past them at the
end; then ``VACUUM ANALYZE``. The rows are consistent by construction, so the connection skips the
foreign-key triggers (``session_replication_role = replica``: needs a superuser, as the benchmark's
PostgreSQL has) — they were most of the insert time.
"""

from __future__ import annotations

import datetime as dt
import time

import asyncpg

from services.appeals import TOPICS as _TOPICS
from services.periods import add_months, month_start

TOPICS = list(_TOPICS)
KINDS = ["RECONCILIATION_ACT", "NO_DEBT_CERTIFICATE", "REFUND", "METER_CHECK", "CHANGE_OF_ACCOUNT_DATA"]

# Each statement may use: {n} accounts, {users}, {first} (first month, a date literal), {months},
# {ub} {ab} {mb} {pb} id bases, and the temp tables created first.
STEPS: list[tuple[str, str]] = [
    (
        "setup",
        """
        CREATE TEMP TABLE bm AS
            SELECT i, CAST(DATE '{first}' + make_interval(months => i) AS date) AS m
            FROM generate_series(0, {months} - 1) AS i;
        CREATE TEMP TABLE bref AS SELECT
            (SELECT array_agg(id ORDER BY id) FROM branches) AS branches,
            (SELECT array_agg(id ORDER BY id) FROM suppliers) AS suppliers,
            (SELECT id FROM services WHERE code = 'ELECTRICITY') AS elec,
            (SELECT id FROM services WHERE code = 'WATER_COLD') AS water,
            (SELECT id FROM services WHERE code = 'HEATING') AS heat;
        """,
    ),
    (
        "users",
        """
        INSERT INTO users (id, phone, last_name, first_name, role, created_at, updated_at)
        OVERRIDING SYSTEM VALUE
        SELECT {ub} + u, '+796' || lpad(u::text, 8, '0'), 'Бенчев', 'Клиент', 'CUSTOMER', t, t
        FROM generate_series(1, {users}) AS u,
             LATERAL (SELECT CAST(DATE '{first}' AS timestamptz) + make_interval(days => u % 1090, hours => 9)
                      AS t) AS x
        """,
    ),
    (
        "accounts",
        """
        INSERT INTO accounts (id, branch_id, number, owner_last_name, owner_first_name, address)
        OVERRIDING SYSTEM VALUE
        SELECT {ab} + g, r.branches[1 + g % cardinality(r.branches)], 'BN' || lpad(g::text, 9, '0'),
               'Бенчев', 'Клиент', 'г. Рязань, ул. Тестовая, д. ' || g
        FROM generate_series(1, {n}) AS g, bref AS r
        """,
    ),
    (
        "user_accounts",
        """
        INSERT INTO user_accounts (user_id, account_id, e_receipt_enabled)
        SELECT {ub} + (g + 1) / 2, {ab} + g, g % 3 = 0 FROM generate_series(1, {n}) AS g
        """,
    ),
    (
        "meters",
        """
        INSERT INTO meters (id, account_id, service_id, serial, zone_scheme, digits)
        OVERRIDING SYSTEM VALUE
        SELECT {mb} + g, {ab} + g, r.elec, 'BM' || g,
               CASE WHEN g % 4 = 0 THEN 'DAY_NIGHT' ELSE 'SINGLE' END, 8
        FROM generate_series(1, {n}) AS g, bref AS r
        """,
    ),
    (
        "charges",
        """
        INSERT INTO charges (account_id, period, service_id, supplier_id, zone, volume, rate, amount,
                             recalculation)
        SELECT {ab} + g, bm.m, p.service_id, p.supplier_id, p.zone, p.volume, p.rate,
               round(p.volume * p.rate, 2), CASE WHEN (g + bm.i) % 97 = 0 THEN -50 ELSE 0 END
        FROM generate_series(1, {n}) AS g CROSS JOIN bm CROSS JOIN bref AS r
        CROSS JOIN LATERAL (
            SELECT r.elec AS service_id, r.suppliers[1] AS supplier_id, z.zone,
                   CAST(60 + (g * 7 + bm.i * 13) % 180 AS numeric) AS volume, CAST(6.57 AS numeric) AS rate
            FROM unnest(CASE WHEN g % 4 = 0 THEN ARRAY['DAY', 'NIGHT'] ELSE ARRAY['SINGLE'] END) AS z(zone)
            UNION ALL
            SELECT r.water, r.suppliers[2], NULL, CAST(3 + (g + bm.i) % 5 AS numeric), CAST(48.9 AS numeric)
            WHERE g % 2 = 0
            UNION ALL
            SELECT r.heat, r.suppliers[3], NULL, CAST(1.2 AS numeric), CAST(2600 AS numeric)
            WHERE g % 3 = 0 AND extract(month FROM bm.m) IN (1, 2, 3, 4, 10, 11, 12)
        ) AS p
        """,
    ),
    (
        "period_balances",
        """
        INSERT INTO period_balances (account_id, supplier_id, period, opening, charged, paid, closing)
        SELECT {ab} + g, s.supplier_id, bm.m, 0, s.charged,
               CASE WHEN (g + bm.i) % 5 = 0 THEN 0 ELSE s.charged END,
               CASE WHEN (g + bm.i) % 5 = 0 THEN s.charged ELSE 0 END
        FROM generate_series(1, {n}) AS g CROSS JOIN bm CROSS JOIN bref AS r
        CROSS JOIN LATERAL (
            SELECT r.suppliers[1] AS supplier_id, CAST(600 + (g * 7 + bm.i * 13) % 1200 AS numeric) AS charged
            UNION ALL SELECT r.suppliers[2], CAST(200 + g % 300 AS numeric) WHERE g % 2 = 0
            UNION ALL SELECT r.suppliers[3], CAST(3120 AS numeric) WHERE g % 3 = 0
        ) AS s
        """,
    ),
    (
        "readings",
        """
        INSERT INTO readings (meter_id, account_id, zone, period, value, source, submitted_at, accepted)
        SELECT {mb} + g, {ab} + g, z.zone, bm.m, (bm.i + 1) * 150 + g % 1000,
               CASE WHEN g % 10 < 6 THEN 'CABINET' WHEN g % 10 < 8 THEN 'MOBILE'
                    WHEN g % 10 = 8 THEN 'OPERATOR' ELSE 'AMI' END,
               CAST(bm.m AS timestamp) AT TIME ZONE 'Europe/Moscow'
                   + make_interval(days => (g + bm.i) % 27, hours => 12),
               true
        FROM generate_series(1, {n}) AS g CROSS JOIN bm
        CROSS JOIN LATERAL unnest(CASE WHEN g % 4 = 0 THEN ARRAY['DAY', 'NIGHT'] ELSE ARRAY['SINGLE'] END)
            AS z(zone)
        WHERE g % 3 <> 0
        """,
    ),
    (
        "payments",
        """
        INSERT INTO payments (id, user_id, status, method, amount, gateway, idempotency_key,
                              request_fingerprint, is_autopay, paid_at, created_at, updated_at)
        OVERRIDING SYSTEM VALUE
        SELECT {pb} + (u - 1) * {months} + bm.i + 1, {ub} + u,
               CASE WHEN (u + bm.i) % 17 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END,
               CASE WHEN (u + bm.i) % 3 = 0 THEN 'SBP' ELSE 'CARD' END,
               1200 + (u * 7 + bm.i * 13) % 1200, 'sandbox', 'bench-' || bm.i, 'bench', u % 11 = 0,
               t, t, t
        FROM generate_series(1, {users}) AS u CROSS JOIN bm,
             LATERAL (SELECT CAST(bm.m AS timestamp) AT TIME ZONE 'Europe/Moscow'
                             + make_interval(days => u % 27, hours => 10) AS t) AS x
        WHERE (u + bm.i) % 2 = 0
        """,
    ),
    (
        "payment_allocations",
        """
        INSERT INTO payment_allocations (payment_id, account_id, supplier_id, period, amount)
        SELECT p.id, a.account_id, r.suppliers[1], bm.m, p.amount / 2
        FROM payments AS p
        JOIN user_accounts AS a ON a.user_id = p.user_id
        JOIN bm ON bm.i = (p.id - {pb} - 1) % {months}
        CROSS JOIN bref AS r
        WHERE p.id > {pb}
        """,
    ),
    (
        "appeals",
        """
        INSERT INTO appeals (user_id, account_id, supplier_id, topic, text, full_name, status, answered_at,
                             created_at, updated_at)
        SELECT {ub} + (g + 1) / 2, {ab} + g, r.suppliers[1 + (g + bm.i) % 3],
               (ARRAY{topics})[1 + (g + bm.i) % {ntopics}], 'Текст обращения', 'Бенчев Клиент',
               CASE WHEN (g + bm.i) % 7 = 0 THEN 'NEW' ELSE 'ANSWERED' END,
               CASE WHEN (g + bm.i) % 7 = 0 THEN NULL
                    ELSE t + make_interval(hours => 1 + (g * 37 + bm.i * 11) % 96) END,
               t, t
        FROM generate_series(25, {n}, 25) AS g CROSS JOIN bm CROSS JOIN bref AS r,
             LATERAL (SELECT CAST(bm.m AS timestamp) AT TIME ZONE 'Europe/Moscow'
                             + make_interval(days => g % 25, hours => 9) AS t) AS x
        WHERE bm.i % 6 = g % 6
        """,
    ),
    (
        "applications",
        """
        INSERT INTO applications (user_id, account_id, kind, status, answered_at, created_at, updated_at)
        SELECT {ub} + (g + 1) / 2, {ab} + g, (ARRAY{kinds})[1 + (g + bm.i) % {nkinds}],
               CASE WHEN (g + bm.i) % 5 = 0 THEN 'IN_PROGRESS' ELSE 'ANSWERED' END,
               CASE WHEN (g + bm.i) % 5 = 0 THEN NULL
                    ELSE t + make_interval(hours => 2 + (g * 29 + bm.i * 7) % 120) END,
               t, t
        FROM generate_series(40, {n}, 40) AS g CROSS JOIN bm,
             LATERAL (SELECT CAST(bm.m AS timestamp) AT TIME ZONE 'Europe/Moscow'
                             + make_interval(days => g % 25, hours => 11) AS t) AS x
        WHERE bm.i % 6 = g % 6
        """,
    ),
    (
        "auth_sessions",
        """
        INSERT INTO auth_sessions (user_id, client_kind, last_used_at, expires_at, revoked_at, created_at)
        SELECT {ub} + u, CASE WHEN (u + bm.i) % 4 = 0 THEN 'MOBILE' ELSE 'WEB' END, t,
               t + interval '30 days', t + interval '1 hour', t
        FROM generate_series(1, {users}) AS u CROSS JOIN bm,
             LATERAL (SELECT CAST(bm.m AS timestamp) AT TIME ZONE 'Europe/Moscow'
                             + make_interval(days => u % 28, hours => 19) AS t) AS x
        WHERE (u + bm.i) % 3 <> 0
        """,
    ),
]

IDENTITY_TABLES = ["users", "accounts", "meters", "payments"]


async def generate(dsn: str, accounts: int, today: dt.date, months: int = 36) -> dict[str, float]:
    """Append ``accounts`` synthetic accounts with ``months`` months of history; seconds per step."""
    first = add_months(month_start(today), -months)
    connection = await asyncpg.connect(dsn)
    timings: dict[str, float] = {}
    try:
        bases = {}
        for key, table in (("ub", "users"), ("ab", "accounts"), ("mb", "meters"), ("pb", "payments")):
            bases[key] = await connection.fetchval(f"SELECT coalesce(max(id), 0) FROM {table}")
        values = {
            **bases,
            "n": accounts,
            "users": (accounts + 1) // 2,
            "first": first.isoformat(),
            "months": months,
            "topics": "[" + ", ".join(f"'{t}'" for t in TOPICS) + "]",
            "ntopics": len(TOPICS),
            "kinds": "[" + ", ".join(f"'{k}'" for k in KINDS) + "]",
            "nkinds": len(KINDS),
        }
        # consistent by construction: skip the per-row foreign-key triggers (superuser) and the WAL flush
        await connection.execute("SET session_replication_role = replica; SET synchronous_commit = off")
        for name, sql in STEPS:
            started = time.monotonic()
            status = await connection.execute(sql.format(**values))
            timings[name] = time.monotonic() - started
            print(f"  {name:22} {status:>24}  {timings[name]:6.1f} s", flush=True)
        for table in IDENTITY_TABLES:
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        started = time.monotonic()
        await connection.execute("VACUUM ANALYZE")
        timings["vacuum_analyze"] = time.monotonic() - started
    finally:
        await connection.close()
    return timings
