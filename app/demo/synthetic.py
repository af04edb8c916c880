"""Synthetic accounts for benchmarks, generated in bulk inside PostgreSQL.

Their billing data goes through the billing import as production's does (issue 18): PostgreSQL writes it as
exchange files (``COPY (SELECT …) TO STDOUT WITH CSV``) that :func:`services.exchange.importer.import_batch`
reads — the accounts with their services and meters in one batch; then, after the cabinet's own rows
(users, consents, links, submitted readings, cabinet payments, inserted directly), the history: charges,
balances, receipts and the readings billing accepted (acknowledging the cabinet's), until the month before
last in batches of :data:`HISTORY_CHUNK` accounts, then the last closed month in one batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db import Database
from app.demo.data import (
    _FIRST_OF_GROUP,
    _GROUP_SPAN,
    _GROUP_USERS,
    _USER_OFFSET,
    GROUP_ELECTRIC,
    GROUP_GAS,
    POLICY_VERSION,
    SUPPLIERS,
    SYNTHETIC_NUMBER_BASE,
    SYNTHETIC_PHONE_BASE,
    WATER_NORM_PER_PERSON,
    _at,
    _fix_sequences,
    synthetic_user_of_account,
)
from services.exchange.formats import ENTITIES, FORMAT, VERSION
from services.exchange.importer import ImportReport, import_batch
from services.periods import add_months, month_start
from services.storage import local_storage

log = logging.getLogger("kabinet.demo")

# --- synthetic accounts (bulk, inside PostgreSQL) -----------------------------------------------------------

_SYNTHETIC_NUMBER_RE = "^7[0-9]{7}$"
# Slots give every generated row a fixed id: base + (account slot) * width + row slot.
_METERS_PER_ACCOUNT = 2  # electricity, cold water (when metered)
_SERVICES_PER_ACCOUNT = 3  # electricity, cold water, waste
_CHARGE_SLOTS = 4  # electricity single/day, electricity night, cold water, waste
_SUPPLIER_SLOTS = 2  # РЭСК, Водоканал

MALE_LAST = (
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
)
MALE_FIRST = (
    "Александр",
    "Сергей",
    "Дмитрий",
    "Андрей",
    "Алексей",
    "Максим",
    "Евгений",
    "Иван",
    "Михаил",
    "Николай",
    "Владимир",
    "Юрий",
    "Олег",
    "Павел",
    "Виктор",
    "Артём",
)
FEMALE_FIRST = (
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Светлана",
    "Анна",
    "Мария",
    "Екатерина",
    "Юлия",
    "Галина",
    "Людмила",
    "Марина",
    "Надежда",
    "Валентина",
    "Оксана",
)
PATRONYMICS = (
    ("Александрович", "Александровна"),
    ("Сергеевич", "Сергеевна"),
    ("Дмитриевич", "Дмитриевна"),
    ("Андреевич", "Андреевна"),
    ("Алексеевич", "Алексеевна"),
    ("Иванович", "Ивановна"),
    ("Михайлович", "Михайловна"),
    ("Николаевич", "Николаевна"),
    ("Владимирович", "Владимировна"),
    ("Юрьевич", "Юрьевна"),
    ("Викторович", "Викторовна"),
    ("Петрович", "Петровна"),
)
STREETS = (
    "ул. Ленина",
    "ул. Есенина",
    "ул. Циолковского",
    "Московское ш.",
    "ул. Гагарина",
    "ул. Каляева",
    "ул. Новосёлов",
    "ул. Интернациональная",
    "ул. Бирюзова",
    "ул. Костычева",
    "Касимовское ш.",
    "ул. Полевая",
    "ул. Вокзальная",
    "ул. Маяковского",
    "Первомайский пр-т",
    "ул. Соборная",
    "ул. Свободы",
    "ул. Дзержинского",
    "ул. Забайкальская",
    "ул. Народный бульвар",
)
DISPLAY_NAMES = ("Квартира", "Дом", "Дача", "Гараж", "Квартира родителей")


def _rnd(expr: str, salt: int) -> str:
    """SQL: a deterministic pseudo-random integer in 0..1048575 from ``expr`` (an integer) and ``salt``."""
    return f"(hashint8extended(({expr})::bigint, {salt}) & 1048575)"


def _local(day_expr: str, hour_expr: str) -> str:
    """SQL: Moscow wall-clock time on ``day_expr`` (a date) at ``hour_expr`` hours as timestamptz."""
    return f"((({day_expr})::timestamp + ({hour_expr}) * interval '1 hour') AT TIME ZONE 'Europe/Moscow')"


_PHONE_SQL = f"'+7' || lpad(({SYNTHETIC_PHONE_BASE} + {{u}})::text, 10, '0')"

# Per-account attributes of one chunk, every later statement joins this table.
SQL_CHUNK_ACCOUNTS = f"""
CREATE UNLOGGED TABLE demo_acc AS
SELECT x.*,
       CASE WHEN x.user_index >= CAST(:u_first AS bigint)
            THEN CAST(:u_base AS bigint) + x.user_index - CAST(:u_first AS bigint)
            ELSE (SELECT id FROM users WHERE deleted_at IS NULL
                  AND phone = {_PHONE_SQL.format(u="x.user_index")})
       END AS user_id,
       CASE WHEN x.female THEN x.last_male || 'а' ELSE x.last_male END AS last_name,
       CASE WHEN x.female THEN (CAST(:female_first AS text[]))[1 + {_rnd("x.i", 3)} % :n_female_first]
            ELSE (CAST(:male_first AS text[]))[1 + {_rnd("x.i", 3)} % :n_male_first] END AS first_name,
       (CAST(:patronymics AS text[]))[1 + 2 * ({_rnd("x.i", 4)} % :n_patronymics) + x.female::int] AS
           middle_name
FROM (
    SELECT s.k, s.i,
           NULL::bigint AS account_id,  -- the import's (set after the accounts batch)
           ({SYNTHETIC_NUMBER_BASE} + s.i)::text AS number,
           b.code || '-' || ({SYNTHETIC_NUMBER_BASE} + s.i)::text AS account_key,
           b.billing_id AS branch_key,
           b.id AS branch_id, b.reading_window_start_day AS win_start, b.reading_window_end_day AS win_end,
           (s.i / {_GROUP_SPAN}) * {_GROUP_USERS} + (CAST(:user_offsets AS int[]))[1 + s.i % {_GROUP_SPAN}]
               AS user_index,
           (CAST(:first_of_group AS boolean[]))[1 + s.i % {_GROUP_SPAN}] AS first_of_group,
           {_rnd("s.i", 1)} % 2 = 0 AS female,
           (CAST(:male_last AS text[]))[1 + {_rnd("s.i", 2)} % :n_male_last] AS last_male,
           'г. Рязань, ' || (CAST(:streets AS text[]))[1 + {_rnd("s.i", 5)} % :n_streets]
               || ', д. ' || (1 + {_rnd("s.i", 6)} % 120) || ', кв. ' || (1 + {_rnd("s.i", 7)} % 180) AS
                   address,
           1 + {_rnd("s.i", 8)} % 4 AS residents,
           1 + {_rnd("s.i", 9)} % 4 AS rooms,
           {_rnd("s.i", 10)} % 4 = 0 AS electric_stove,
           {_rnd("s.i", 11)} % 25 = 0 AS electric_heating,
           {_rnd("s.i", 12)} % 3 = 0 AS two_zone,
           {_rnd("s.i", 13)} % 10 < 7 AS water_meter,
           (120 + {_rnd("s.i", 14)} % 220)::numeric AS elec_average,
           (2.5 + ({_rnd("s.i", 15)} % 200) / 100.0)::numeric AS water_per_person,
           (10000 + {_rnd("s.i", 16)} % 40000)::numeric(14, 3) AS day_base,
           (4000 + {_rnd("s.i", 17)} % 15000)::numeric(14, 3) AS night_base,
           round((50 + ({_rnd("s.i", 18)} % 700000) / 1000.0)::numeric, 3) AS water_base,
           {_rnd("s.i", 19)} % 10 = 0 AS overpayer,
           CASE WHEN {_rnd("s.i", 20)} % 25 = 1 THEN 2 + {_rnd("s.i", 21)} % 5 ELSE 0 END AS stopped_months,
           5 + {_rnd("s.i", 22)} % 19 AS pay_day
    FROM (SELECT k, CAST(:i0 AS bigint) + k AS i
          FROM generate_series(CAST(:k0 AS bigint), CAST(:k1 AS bigint) - 1) AS k) AS s
    JOIN branches AS b ON b.id = (CAST(:branch_ids AS bigint[]))[1 + s.i % :n_branches]
) AS x
"""

SQL_USERS = f"""
INSERT INTO users (id, phone, email, email_confirmed_at, last_name, first_name, middle_name, password_hash,
                   password_changed_at, role, show_hints, created_at, updated_at)
SELECT a.user_id, {_PHONE_SQL.format(u="a.user_index")}, 'client' || a.user_index || '@example.com',
       CAST(:created AS timestamptz), a.last_name, a.first_name, a.middle_name, CAST(:password_hash AS text),
       CAST(:created AS timestamptz), 'CUSTOMER', true, CAST(:created AS timestamptz), CAST(:created AS
           timestamptz)
FROM demo_acc AS a WHERE a.first_of_group
"""

SQL_CONSENTS = """
INSERT INTO consents (id, user_id, kind, policy_version, accepted_at)
SELECT CAST(:cons_base AS bigint) + a.user_id - CAST(:u_base AS bigint), a.user_id, 'PERSONAL_DATA',
       CAST(:policy AS text), CAST(:created AS timestamptz)
FROM demo_acc AS a WHERE a.first_of_group
"""

CSV_ACCOUNTS = f"""
SELECT a.account_key, a.branch_key, a.number, a.last_name, a.first_name, a.middle_name, a.address,
       round(22 + a.rooms * 15 + ({_rnd("a.i", 30)} % 900) / 100.0, 2), round((22 + a.rooms * 15) * 0.62, 2),
       1 + {_rnd("a.i", 31)} % 2, a.residents + ({_rnd("a.i", 32)} % 5 = 0)::int, a.residents, a.rooms,
       CASE WHEN a.electric_stove THEN 'ELECTRIC' ELSE 'GAS' END,
       CASE WHEN a.electric_heating THEN 'true' ELSE 'false' END,
       CASE WHEN {_rnd("a.i", 33)} % 20 <> 0 THEN 'true' ELSE 'false' END, NULL
FROM demo_acc AS a ORDER BY a.k
"""

SQL_USER_ACCOUNTS = f"""
INSERT INTO user_accounts (id, user_id, account_id, display_name, e_receipt_enabled, linked_at)
SELECT CAST(:ua_base AS bigint) + a.k, a.user_id, a.account_id,
       CASE WHEN {_rnd("a.i", 40)} % 3 = 0 THEN (CAST(:display_names AS text[]))[1 + {_rnd("a.i", 41)} %
           :n_display]
       END,
       {_rnd("a.i", 42)} % 3 = 0, CAST(:created AS timestamptz) + (a.i % 1440) * interval '1 minute'
FROM demo_acc AS a
"""

CSV_ACCOUNT_SERVICES = f"""
SELECT a.account_key, (ARRAY['ELECTRICITY', 'WATER_COLD', 'WASTE'])[1 + s.slot],
       CASE WHEN s.slot = 0 THEN CASE WHEN a.two_zone THEN 'DAY_NIGHT' ELSE 'SINGLE' END END,
       DATE '{{opened}}', NULL
FROM demo_acc AS a CROSS JOIN generate_series(0, {_SERVICES_PER_ACCOUNT - 1}) AS s(slot) ORDER BY a.k, s.slot
"""

CSV_METERS = f"""
SELECT 'M-' || a.number || '-' || j.slot, a.account_key,
       CASE WHEN j.slot = 0 THEN 'ELECTRICITY' ELSE 'WATER_COLD' END,
       lpad(({_rnd("a.i * 2 + j.slot", 50)} * 97 + a.i)::text, 9, '0'),
       CASE WHEN j.slot = 1 THEN 'СГВ-15 «Бетар»' WHEN a.two_zone THEN 'Меркурий 200.02'
            ELSE 'Меркурий 201.8' END,
       CASE WHEN j.slot = 0 AND a.two_zone THEN 'DAY_NIGHT' ELSE 'SINGLE' END,
       CASE WHEN j.slot = 0 THEN 6 ELSE 5 END, CASE WHEN j.slot = 0 THEN 1 ELSE 3 END,
       CASE WHEN j.slot = 0 THEN 'Лестничная площадка' ELSE 'Санузел' END,
       d.installed, d.installed, d.installed + CASE WHEN j.slot = 0 THEN 5844 ELSE 2191 END,
       CASE WHEN j.slot = 0 THEN 'РЭСК ' ELSE 'ВК ' END || lpad(({_rnd("a.i", 52)})::text, 7, '0'),
       d.installed, NULL
FROM demo_acc AS a
CROSS JOIN LATERAL (SELECT DATE '{{installed}}' - ({_rnd("a.i", 51)} % 1500)::int AS installed) AS d
CROSS JOIN generate_series(0, {_METERS_PER_ACCOUNT - 1}) AS j(slot)
WHERE j.slot = 0 OR a.water_meter
ORDER BY a.k, j.slot
"""

# After the accounts batch: the ids the import gave the accounts and meters.
SQL_IMPORTED_IDS = f"""
UPDATE demo_acc AS d SET account_id = acc.id FROM accounts AS acc WHERE acc.billing_id = d.account_key;
CREATE UNLOGGED TABLE demo_meter AS
SELECT a.k, j.slot AS meter_slot, m.id AS meter_id, m.billing_id AS meter_key
FROM demo_acc AS a CROSS JOIN generate_series(0, {_METERS_PER_ACCOUNT - 1}) AS j(slot)
JOIN meters AS m ON m.billing_id = 'M-' || a.number || '-' || j.slot;
CREATE INDEX ON demo_acc (k);
ANALYZE demo_acc, demo_meter
"""

# Consumption per account, month and charge slot; readings and charges are both derived from it.
SQL_USAGE = f"""
CREATE UNLOGGED TABLE demo_usage AS
SELECT x.k, x.i, x.account_id, x.branch_id, x.m, x.period, c.slot,
       CASE WHEN c.slot < 2 THEN CAST(:svc_electricity AS bigint) WHEN c.slot = 2 THEN CAST(:svc_water AS
           bigint)
            ELSE CAST(:svc_waste AS bigint) END AS service_id,
       CASE WHEN c.slot = 2 THEN CAST(:sup_water AS bigint) ELSE CAST(:sup_resk AS bigint) END AS supplier_id,
       CASE WHEN c.slot = 2 THEN 1 ELSE 0 END AS sup_slot,
       CASE WHEN c.slot = 1 THEN 'NIGHT' WHEN c.slot = 0 AND x.two_zone THEN 'DAY' ELSE 'SINGLE' END AS zone,
       CASE WHEN c.slot >= 2 THEN 0 WHEN x.electric_stove OR x.electric_heating THEN 2 ELSE 1 END AS grp,
       (c.slot < 2 OR (c.slot = 2 AND x.water_meter)) AS metered,
       CASE WHEN c.slot < 2 THEN 0 ELSE 1 END AS meter_slot,
       CASE WHEN c.slot = 1 THEN 1 ELSE 0 END AS zone_slot,
       CASE c.slot WHEN 0 THEN x.day_base WHEN 1 THEN x.night_base ELSE x.water_base END AS base_value,
       CASE c.slot
            WHEN 0 THEN CASE WHEN x.two_zone THEN x.elec_total - round(x.elec_total * 0.32) ELSE
                x.elec_total END
            WHEN 1 THEN round(x.elec_total * 0.32)
            WHEN 2 THEN CASE WHEN x.water_meter
                             THEN round(x.residents * x.water_per_person
                                        * (0.8 + ({_rnd("x.i * 64 + x.m", 61)} % 400) / 1000.0), 3)
                             ELSE x.residents * CAST(:water_norm AS numeric) END
            ELSE x.residents::numeric
       END::numeric(14, 3) AS volume
FROM (
    SELECT a.*, m.m, (CAST(:p0 AS date) + m.m * interval '1 month')::date AS period,
           round((a.elec_average * (1 + CASE WHEN a.electric_stove THEN 0.3 ELSE 0 END)
                  + CASE WHEN a.electric_heating THEN 300 ELSE 0 END)
                 * (1 + 0.25 * cos(2 * pi() * (extract(month FROM CAST(:p0 AS date) + m.m * interval
                     '1 month')
                                                - 1) / 12))::numeric
                 * (0.85 + ({_rnd("a.i * 64 + m.m", 60)} % 300) / 1000.0)::numeric) AS elec_total
    FROM demo_acc AS a CROSS JOIN generate_series(0, CAST(:months AS int) - 1) AS m(m)
) AS x
CROSS JOIN generate_series(0, {_CHARGE_SLOTS - 1}) AS c(slot)
WHERE c.slot <> 1 OR x.two_zone
"""

SQL_SUBMISSIONS = f"""
INSERT INTO reading_submissions (id, account_id, user_id, source, period, created_at)
SELECT CAST(:rs_base AS bigint) + a.k * (CAST(:months AS int) + 1) + r.r, a.account_id,
       a.user_id, src.source, (CAST(:p0 AS date) + (r.r - 1) * interval '1 month')::date,
       {
    _local(
        "CAST(:p0 AS date) + (r.r - 1) * interval '1 month' + (a.win_start - 1) * interval '1 day'",
        "8 + r.r % 12",
    )
}
FROM demo_acc AS a CROSS JOIN generate_series(1, CAST(:months AS int)) AS r(r)
CROSS JOIN LATERAL (SELECT CASE WHEN {_rnd("a.i * 64 + r.r", 70)} % 20 < 9 THEN 'CABINET'
                                WHEN {
    _rnd("a.i * 64 + r.r", 70)
} % 20 < 17 THEN 'MOBILE' END AS source) AS src
WHERE src.source IS NOT NULL
"""

# r = 0 is the base reading of the month before the history; r = m + 1 closes month m. The base reading and
# the meter data (AMI) are billing's; the others were submitted in the cabinet and billing acknowledges them.
SQL_READING_VALUES = f"""
CREATE UNLOGGED TABLE demo_read AS
SELECT v.k, v.account_id, v.meter_slot, v.zone, v.r, dm.meter_id, dm.meter_key, a.number, a.user_id,
       (CAST(:p0 AS date) + (v.r - 1) * interval '1 month')::date AS period, v.value, src.source,
       (v.r = 0 OR src.source = 'AMI') AS billings, NULL::bigint AS cabinet_id,
       {
    _local(
        "CAST(:p0 AS date) + (v.r - 1) * interval '1 month' + (a.win_start - 1) * interval '1 day'",
        "8 + v.r % 12",
    )
} AS submitted_at,
       {_local("CAST(:p0 AS date) + (v.r - 1) * interval '1 month' + a.win_end * interval '1 day'", "1")}
           AS accepted_at
FROM (
    SELECT u.k, u.account_id, u.meter_slot, u.zone_slot, u.zone, u.m + 1 AS r,
           u.base_value + sum(u.volume) OVER (PARTITION BY u.k, u.slot ORDER BY u.m) AS value
    FROM demo_usage AS u WHERE u.metered
    UNION ALL
    SELECT u.k, u.account_id, u.meter_slot, u.zone_slot, u.zone, 0, u.base_value
    FROM demo_usage AS u WHERE u.metered AND u.m = 0
) AS v
JOIN demo_acc AS a ON a.k = v.k
JOIN demo_meter AS dm ON dm.k = v.k AND dm.meter_slot = v.meter_slot
CROSS JOIN LATERAL (SELECT CASE WHEN v.r = 0 THEN 'OPERATOR'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 9 THEN 'CABINET'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 17 THEN 'MOBILE'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 19 THEN 'AMI'
                                ELSE 'OPERATOR' END AS source) AS src
"""

SQL_CABINET_READINGS = """
WITH submitted AS (
    INSERT INTO readings (meter_id, account_id, submission_id, zone, period, value, source,
                          submitted_by_user_id, submitted_at, accepted)
    SELECT d.meter_id, d.account_id,
           CASE WHEN d.source IN ('CABINET', 'MOBILE')
                THEN CAST(:rs_base AS bigint) + d.k * (CAST(:months AS int) + 1) + d.r END,
           d.zone, d.period, d.value, d.source,
           CASE WHEN d.source IN ('CABINET', 'MOBILE') THEN d.user_id END,
           d.submitted_at, false
    FROM demo_read AS d WHERE NOT d.billings
    RETURNING id, meter_id, zone, period
)
UPDATE demo_read AS d SET cabinet_id = s.id FROM submitted AS s
WHERE d.meter_id = s.meter_id AND d.zone = s.zone AND d.period = s.period AND NOT d.billings
"""

SQL_CHARGES = f"""
CREATE UNLOGGED TABLE demo_charge AS
SELECT c.k, c.m, c.slot, c.account_id, c.period, c.service_id, c.supplier_id, c.sup_slot,
       CASE WHEN c.slot < 2 THEN c.zone END AS zone, c.volume, c.rate, c.amount,
       CASE WHEN c.slot = 0 AND {_rnd("c.i * 64 + c.m", 80)} % 40 = 0
            THEN CASE WHEN {_rnd("c.i * 64 + c.m", 81)} % 2 = 0 THEN -round(c.amount * 0.25, 2)
                      ELSE round(c.amount * 0.15, 2) END
            ELSE 0 END AS recalculation
FROM (
    SELECT u.*, r.rate, round(u.volume * r.rate, 2) AS amount
    FROM demo_usage AS u
    JOIN demo_rates AS r ON r.branch_id = u.branch_id AND r.service_id = u.service_id AND r.zone = u.zone
                         AND r.grp = u.grp AND r.period = u.period
) AS c;
INSERT INTO demo_due (k, m, account_id, period, supplier_id, sup_slot, charged)
SELECT k, m, account_id, period, supplier_id, sup_slot, sum(amount + recalculation)
FROM demo_charge GROUP BY k, m, account_id, period, supplier_id, sup_slot
"""

# Payment in month t (1..months; months = the current month) pays the charges of month t - 1, and of t - 2
# when month t - 1 went without payment. Every 7th month is skipped; some accounts stop paying at the end;
# overpayers add an advance in the current month.
SQL_PAYMENT_PLAN = """
INSERT INTO demo_alloc (k, t, sup_slot, supplier_id, account_id, user_id, amount, paid_at, method)
SELECT p.k, p.t, d.sup_slot, d.supplier_id, p.account_id, p.user_id,
       sum(d.charged) + CASE WHEN p.overpayer AND p.t = CAST(:months AS int) AND d.sup_slot = 0
                             THEN 500 ELSE 0 END,
       min(p.paid_at), min(p.method)
FROM (
    SELECT a.k, a.i, t.t, a.account_id, a.user_id, a.overpayer,
           (a.i + t.t - 1) % 7 = 3 AND t.t >= 2 AS covers_previous,
           PAID_AT AS paid_at,
           CASE WHEN RND_METHOD % 5 < 2 THEN 'SBP' ELSE 'CARD' END AS method
    FROM demo_acc AS a CROSS JOIN generate_series(1, CAST(:months AS int)) AS t(t)
    WHERE (a.i + t.t) % 7 <> 3
      AND NOT (a.stopped_months > 0 AND t.t > CAST(:months AS int) - a.stopped_months)
      AND (t.t < CAST(:months AS int) OR a.pay_day < CAST(:today_day AS int))
) AS p
CROSS JOIN LATERAL (VALUES (p.t - 1), (CASE WHEN p.covers_previous THEN p.t - 2 END)) AS c(m)
JOIN demo_due AS d ON d.k = p.k AND d.m = c.m
GROUP BY p.k, p.t, d.sup_slot, d.supplier_id, p.account_id, p.user_id, p.overpayer
HAVING sum(d.charged) > 0
""".replace(
    "PAID_AT",
    _local(
        "CAST(:p0 AS date) + t.t * interval '1 month' + (a.pay_day - 1) * interval '1 day'",
        f"9 + {_rnd('a.i * 64 + t.t', 90)} % 11",
    ),
).replace("RND_METHOD", _rnd("a.i * 64 + t.t", 91))

SQL_PAYMENTS = """
INSERT INTO payments (id, user_id, status, method, amount, currency, gateway, gateway_payment_id,
    idempotency_key,
                      request_fingerprint, rules_accepted_at, is_autopay, paid_at, created_at, updated_at)
SELECT g.id, g.user_id, 'SUCCEEDED', g.method, g.amount, 'RUB', 'sandbox', 'demo-' || g.id, 'demo-' || g.id,
       lpad(to_hex(g.id), 64, '0'), g.paid_at, false, g.paid_at + interval '40 seconds', g.paid_at,
       g.paid_at + interval '40 seconds'
FROM (SELECT CAST(:p_base AS bigint) + k * (CAST(:months AS int) + 1) + t AS id, min(user_id) AS user_id,
             min(method) AS method, sum(amount) AS amount, min(paid_at) AS paid_at
      FROM demo_alloc GROUP BY k, t) AS g
"""

SQL_ALLOCATIONS = f"""
INSERT INTO payment_allocations (id, payment_id, account_id, supplier_id, period, amount)
SELECT CAST(:pa_base AS bigint) + (l.k * (CAST(:months AS int) + 1) + l.t) * {_SUPPLIER_SLOTS} + l.sup_slot,
       CAST(:p_base AS bigint) + l.k * (CAST(:months AS int) + 1) + l.t, l.account_id, l.supplier_id,
       (CAST(:p0 AS date) + l.t * interval '1 month')::date, l.amount
FROM demo_alloc AS l
"""

SQL_BALANCES = """
CREATE UNLOGGED TABLE demo_bal AS
SELECT b.k, b.period, b.supplier_id, b.closing - b.charged + b.paid AS opening, b.charged, b.paid, b.closing
FROM (
    SELECT d.*, coalesce(l.amount, 0) AS paid,
           sum(d.charged - coalesce(l.amount, 0)) OVER (PARTITION BY d.k, d.sup_slot ORDER BY d.m) AS closing
    FROM demo_due AS d LEFT JOIN demo_alloc AS l ON l.k = d.k AND l.t = d.m AND l.sup_slot = d.sup_slot
) AS b
"""

SQL_WORK_TABLES = """
CREATE UNLOGGED TABLE demo_due (k bigint, m int, account_id bigint, period date, supplier_id bigint,
                                sup_slot int, charged numeric);
CREATE UNLOGGED TABLE demo_alloc (k bigint, t int, sup_slot int, supplier_id bigint, account_id bigint,
                                  user_id bigint, amount numeric, paid_at timestamptz, method text)
"""

SQL_RATES = """
CREATE UNLOGGED TABLE demo_rates AS
SELECT t.branch_id, t.service_id, t.zone, p::date AS period, t.rate,
       CASE t.consumer_group WHEN CAST(:group_gas AS text) THEN 1 WHEN CAST(:group_electric AS text) THEN 2
            ELSE 0 END AS grp
FROM tariffs AS t
CROSS JOIN generate_series(CAST(:p0 AS date), CAST(:p_last AS date), interval '1 month') AS p
WHERE p::date >= t.valid_from AND (t.valid_to IS NULL OR p::date <= t.valid_to)
"""

WORK_TABLES = (
    "demo_rates",
    "demo_acc",
    "demo_meter",
    "demo_usage",
    "demo_read",
    "demo_charge",
    "demo_due",
    "demo_alloc",
    "demo_bal",
)
"""The run's work tables (unlogged, dropped at the end)."""

# A batch of history: ``{where}`` chooses its periods and accounts (:func:`_history_files`).
HISTORY_FILES: dict[str, str] = {
    "charges": """
SELECT 'C-' || a.number || '-' || to_char(c.period, 'YYYY-MM') || '-' || c.slot, a.account_key,
       to_char(c.period, 'YYYY-MM'), sv.billing_id, sup.billing_id, c.zone, c.volume, c.rate, c.amount,
       c.recalculation
FROM demo_charge AS c JOIN demo_acc AS a ON a.k = c.k
JOIN services AS sv ON sv.id = c.service_id JOIN suppliers AS sup ON sup.id = c.supplier_id
WHERE {where} ORDER BY c.k, c.period, c.slot
""",
    "balances": """
SELECT a.account_key, sup.billing_id, to_char(b.period, 'YYYY-MM'), b.opening, b.charged, b.paid, b.closing
FROM demo_bal AS b JOIN demo_acc AS a ON a.k = b.k JOIN suppliers AS sup ON sup.id = b.supplier_id
WHERE {where} ORDER BY b.k, b.period, b.supplier_id
""",
    "receipts": """
SELECT a.account_key, to_char(b.period, 'YYYY-MM'), sum(b.closing),
       (b.period + interval '1 month 9 days')::date
FROM demo_bal AS b JOIN demo_acc AS a ON a.k = b.k
WHERE {where} GROUP BY b.k, a.account_key, b.period ORDER BY b.k, b.period
""",
    "readings": """
SELECT 'R-' || d.number || '-' || d.meter_slot || '-' || d.zone || '-' || to_char(d.period, 'YYYY-MM'),
       d.meter_key, d.zone, to_char(d.period, 'YYYY-MM'), d.value, d.accepted_at, d.source, d.cabinet_id
FROM demo_read AS d WHERE {where} ORDER BY d.k, d.period, d.meter_slot, d.zone
""",
}

# cabinet statements → rows counted under this table name
_CABINET_STEPS: tuple[tuple[str, str | None], ...] = (
    (SQL_USERS, "users"),
    (SQL_CONSENTS, "consents"),
    (SQL_USER_ACCOUNTS, "user_accounts"),
    (SQL_USAGE, None),
    ("ANALYZE demo_usage", None),
    (SQL_SUBMISSIONS, "reading_submissions"),
    (SQL_READING_VALUES, None),
    (SQL_CABINET_READINGS, None),
    (SQL_CHARGES, None),
    ("ANALYZE demo_due", None),
    (SQL_PAYMENT_PLAN, None),
    ("ANALYZE demo_alloc", None),
    (SQL_PAYMENTS, "payments"),
    (SQL_ALLOCATIONS, "payment_allocations"),
    (SQL_BALANCES, None),
    ("CREATE INDEX ON demo_charge (k)", None),
    ("CREATE INDEX ON demo_bal (k)", None),
    ("CREATE INDEX ON demo_read (k)", None),
    ("ANALYZE demo_read, demo_charge, demo_bal", None),
)

# rows given explicit ids (base + slot) by the cabinet statements
_SYNTHETIC_TABLES = (
    "users",
    "consents",
    "user_accounts",
    "reading_submissions",
    "payments",
    "payment_allocations",
)
# table → its id base parameter
_ID_BASES = {
    "users": "u_base",
    "consents": "cons_base",
    "user_accounts": "ua_base",
    "reading_submissions": "rs_base",
    "payments": "p_base",
    "payment_allocations": "pa_base",
}
# exchange entity → the table it fills
_ENTITY_TABLES = {
    "accounts": "accounts",
    "account_services": "account_services",
    "meters": "meters",
    "charges": "charges",
    "balances": "period_balances",
    "receipts": "receipts",
    "readings": "readings",
}


async def _load_synthetic(
    db: Database, *, count: int, months: int, today: dt.date, password_hash: str, counts: dict[str, int]
) -> None:
    """Append ``count`` synthetic accounts (with users and ``months`` of history): billing's data through
    the billing import, the cabinet's inserted (module docstring)."""
    current = month_start(today)
    p0 = add_months(current, -months)
    async with db.engine.connect() as conn:
        start: int = (
            await conn.execute(
                text(
                    f"SELECT coalesce(max(number::bigint) - {SYNTHETIC_NUMBER_BASE} + 1, 0) FROM accounts "
                    f"WHERE number ~ '{_SYNTHETIC_NUMBER_RE}'"
                )
            )
        ).scalar_one()
        bases: dict[str, int] = {}
        for table, name in _ID_BASES.items():
            bases[name] = (
                await conn.execute(text(f"SELECT coalesce(max(id), 0) + 1 FROM {table}"))
            ).scalar_one()
        refs = {row.code: row.id for row in (await conn.execute(text("SELECT code, id FROM services"))).all()}
        suppliers = {
            row.inn: row.id for row in (await conn.execute(text("SELECT inn, id FROM suppliers"))).all()
        }
        superuser: bool = (
            await conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
        ).scalar_one()
        branch_ids: list[int] = list(
            (await conn.execute(text("SELECT id FROM branches ORDER BY position, id"))).scalars()
        )
        await conn.commit()
    first_user = synthetic_user_of_account(start) + (0 if _FIRST_OF_GROUP[start % _GROUP_SPAN] else 1)
    created = _at(add_months(p0, -2), 12)
    params: dict[str, Any] = {
        **bases,
        "i0": start,
        "k0": 0,
        "k1": count,
        "u_first": first_user,
        "months": months,
        "p0": p0,
        "p_last": add_months(current, -1),
        "p0_index": p0.year * 12 + p0.month - 1,
        "today_day": today.day,
        "created": created,
        "password_hash": password_hash,
        "policy": POLICY_VERSION,
        "branch_ids": branch_ids,
        "n_branches": len(branch_ids),
        "user_offsets": _USER_OFFSET,
        "first_of_group": _FIRST_OF_GROUP,
        "male_last": list(MALE_LAST),
        "n_male_last": len(MALE_LAST),
        "male_first": list(MALE_FIRST),
        "n_male_first": len(MALE_FIRST),
        "female_first": list(FEMALE_FIRST),
        "n_female_first": len(FEMALE_FIRST),
        "patronymics": [form for pair in PATRONYMICS for form in pair],
        "n_patronymics": len(PATRONYMICS),
        "streets": list(STREETS),
        "n_streets": len(STREETS),
        "display_names": list(DISPLAY_NAMES),
        "n_display": len(DISPLAY_NAMES),
        "svc_electricity": refs["ELECTRICITY"],
        "svc_water": refs["WATER_COLD"],
        "svc_waste": refs["WASTE"],
        "sup_resk": suppliers[SUPPLIERS["RESK"]["inn"]],
        "sup_water": suppliers[SUPPLIERS["WATER"]["inn"]],
        "group_gas": GROUP_GAS,
        "group_electric": GROUP_ELECTRIC,
        "water_norm": WATER_NORM_PER_PERSON,
    }
    storage = local_storage(Path("/nonexistent"))  # the batches name no documents
    try:
        async with db.engine.begin() as conn:
            await _drop_work_tables(conn)
            for sql in (SQL_RATES, "ANALYZE demo_rates", SQL_CHUNK_ACCOUNTS, *SQL_WORK_TABLES.split(";")):
                await conn.execute(text(sql), _used(sql, params))
        # billing sends the accounts with their services and meters
        async with db.session() as session:
            raw = await _raw(session)
            files = {
                "accounts.csv": await _csv(raw, "accounts", CSV_ACCOUNTS),
                "account_services.csv": await _csv(
                    raw, "account_services", CSV_ACCOUNT_SERVICES.format(opened=add_months(p0, -24))
                ),
                "meters.csv": await _csv(raw, "meters", CSV_METERS.format(installed=add_months(p0, -1))),
            }
            report = await import_batch(session, files, storage=storage, now=created, announce=False)
            await session.commit()
        _count(report, counts)
        # the cabinet's rows: users, their links, submitted readings, cabinet payments
        async with db.engine.begin() as conn:
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
            await conn.execute(text("SET LOCAL work_mem = '128MB'"))
            await conn.execute(text("SET LOCAL kabinet.exchange = 'import'"))  # history, not news for billing
            if superuser:  # consistent by construction; the FK triggers would cost half the time
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in SQL_IMPORTED_IDS.split(";"):
                await conn.execute(text(statement))
            for step, counted in _CABINET_STEPS:
                for statement in step.split(";") if step is SQL_CHARGES else (step,):
                    result = await conn.execute(text(statement), _used(statement, params))
                    if counted is not None:
                        counts[counted] += result.rowcount
            counts["readings"] += (
                await conn.execute(text("SELECT count(*) FROM demo_read WHERE NOT billings"))
            ).scalar_one()
        async with db.engine.connect() as conn:  # the planner must know the tables grew
            await conn.execute(text(f"ANALYZE {', '.join(_ANALYZED)}"))
            await conn.commit()
        # billing's history: until the month before last (by chunks of accounts, so a batch stays a few
        # hundred MB), then the last closed month, as the core accounts' (app.demo.loader.load)
        last = add_months(current, -1)
        batches = [
            (add_months(p0, -1), last, k0, min(k0 + HISTORY_CHUNK, count), _at(last, HISTORY_HOUR))
            for k0 in range(0, count, HISTORY_CHUNK)
        ]
        batches.append((last, current, 0, count, _at(current, HISTORY_HOUR)))
        for since, before, k0, k1, sent in batches:
            async with db.session() as session:
                files = await _history_files(await _raw(session), since, before, k0, k1)
                report = await import_batch(
                    session,
                    files,
                    storage=storage,
                    now=sent,
                    announce=False,  # history: not news
                )
                await session.commit()
            _count(report, counts)
            async with db.engine.connect() as conn:  # the planner must know the tables grew
                await conn.execute(text("ANALYZE charges, period_balances, receipts, readings"))
                await conn.commit()
    finally:
        async with db.engine.begin() as conn:
            await _drop_work_tables(conn)
    async with db.engine.begin() as conn:
        await _fix_sequences(conn, _SYNTHETIC_TABLES)
        await conn.execute(text("ANALYZE"))
    counts["synthetic_users"] += synthetic_user_of_account(start + count - 1) - first_user + 1


_ANALYZED = (
    "users",
    "user_accounts",
    "accounts",
    "account_services",
    "meters",
    "reading_submissions",
    "readings",
    "payments",
    "payment_allocations",
)

HISTORY_HOUR = 3
"""Billing sends a closed month's batch at 03:00 Moscow time on the 1st of the next month."""
HISTORY_CHUNK = 20_000
"""Accounts per history batch: its files take about 25 kB per account in memory."""
_ALIASES = {"charges": "c", "balances": "b", "receipts": "b", "readings": "d"}


async def _history_files(
    raw: asyncpg.Connection, since: dt.date, before: dt.date, k0: int, k1: int
) -> dict[str, bytes]:
    """The exchange files of the periods ``since`` ≤ period < ``before`` of this run's accounts ``k0..k1``."""
    files = {}
    for entity, sql in HISTORY_FILES.items():
        t = _ALIASES[entity]
        where = f"{t}.period >= DATE '{since}' AND {t}.period < DATE '{before}'"
        where += f" AND {t}.k >= {k0} AND {t}.k < {k1}"
        files[f"{entity}.csv"] = await _csv(raw, entity, sql.format(where=where))
    return files


def _count(report: ImportReport, counts: dict[str, int]) -> None:
    log.info(
        "synthetic batch imported: %s; analytics %.1f s",
        ", ".join(
            f"{name} {entity.rows} rows {entity.seconds:.1f} s" for name, entity in report.entities.items()
        ),
        report.analytics_seconds,
    )
    for name, entity in report.entities.items():
        counts[_ENTITY_TABLES[name]] += entity.inserted
        counts[f"imported_{name}"] += entity.changed
    counts["imported_notified"] += report.notified


async def _drop_work_tables(conn: AsyncConnection) -> None:
    await conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(WORK_TABLES)}"))


async def _raw(session: AsyncSession) -> asyncpg.Connection:
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    return raw


async def _csv(raw: asyncpg.Connection, entity: str, query: str) -> bytes:
    """An exchange file of ``entity`` written by PostgreSQL: ``query`` selects its columns in order."""
    chunks = [f"#{FORMAT}/{VERSION} {entity}\n{','.join(ENTITIES[entity].names)}\n".encode()]

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await raw.copy_from_query(query, output=sink, format="csv")
    return b"".join(chunks)


_BIND = re.compile(r"(?<![:\w]):(\w+)")


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that ``sql`` binds."""
    return {name: params[name] for name in set(_BIND.findall(sql))}
