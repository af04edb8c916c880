"""Synthetic accounts for benchmarks, generated in bulk inside PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

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
from services.periods import add_months, month_start

# --- synthetic accounts (bulk, inside PostgreSQL) -----------------------------------------------------------

_SYNTHETIC_NUMBER_RE = "^7[0-9]{7}$"
SYNTHETIC_CHUNK = _GROUP_SPAN * 250
"""Accounts per transaction; a multiple of the user group span so no user's accounts straddle two chunks."""
SYNTHETIC_WORKERS = 2
"""Connections loading chunks in parallel."""

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
CREATE TEMP TABLE demo_acc ON COMMIT DROP AS
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
           CAST(:acc_base AS bigint) + s.k AS account_id,
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

SQL_ACCOUNTS = f"""
INSERT INTO accounts (id, branch_id, number, owner_last_name, owner_first_name, owner_middle_name, address,
                      total_area, living_area, owners_count, registered_count, residing_count, rooms,
                          stove_type,
                      electric_heating, e_receipt_allowed, created_at, updated_at)
SELECT a.account_id, a.branch_id, ({SYNTHETIC_NUMBER_BASE} + a.i)::text, a.last_name, a.first_name,
    a.middle_name,
       a.address, round(22 + a.rooms * 15 + ({_rnd("a.i", 30)} % 900) / 100.0, 2),
       round((22 + a.rooms * 15) * 0.62, 2), 1 + {_rnd("a.i", 31)} % 2, a.residents + ({_rnd("a.i", 32)} % 5
           = 0)::int,
       a.residents, a.rooms, CASE WHEN a.electric_stove THEN 'ELECTRIC' ELSE 'GAS' END, a.electric_heating,
       {_rnd("a.i", 33)} % 20 <> 0, CAST(:created AS timestamptz), CAST(:created AS timestamptz)
FROM demo_acc AS a
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

SQL_ACCOUNT_SERVICES = f"""
INSERT INTO account_services (id, account_id, service_id, zone_scheme, started_on)
SELECT CAST(:as_base AS bigint) + a.k * {_SERVICES_PER_ACCOUNT} + s.slot, a.account_id,
       (ARRAY[CAST(:svc_electricity AS bigint), CAST(:svc_water AS bigint), CAST(:svc_waste AS bigint)])[1 +
           s.slot],
       CASE WHEN s.slot = 0 THEN CASE WHEN a.two_zone THEN 'DAY_NIGHT' ELSE 'SINGLE' END END,
       CAST(:opened AS date)
FROM demo_acc AS a CROSS JOIN generate_series(0, {_SERVICES_PER_ACCOUNT - 1}) AS s(slot)
"""

SQL_METERS = f"""
INSERT INTO meters (id, account_id, service_id, serial, model, zone_scheme, digits, decimals, location,
                    installed_at, verified_at, verification_due, seal_number, sealed_at, created_at,
                        updated_at)
SELECT CAST(:m_base AS bigint) + a.k * {_METERS_PER_ACCOUNT} + j.slot, a.account_id,
       CASE WHEN j.slot = 0 THEN CAST(:svc_electricity AS bigint) ELSE CAST(:svc_water AS bigint) END,
       lpad(({_rnd("a.i * 2 + j.slot", 50)} * 97 + a.i)::text, 9, '0'),
       CASE WHEN j.slot = 1 THEN 'СГВ-15 «Бетар»' WHEN a.two_zone THEN 'Меркурий 200.02'
            ELSE 'Меркурий 201.8' END,
       CASE WHEN j.slot = 0 AND a.two_zone THEN 'DAY_NIGHT' ELSE 'SINGLE' END,
       CASE WHEN j.slot = 0 THEN 6 ELSE 5 END, CASE WHEN j.slot = 0 THEN 1 ELSE 3 END,
       CASE WHEN j.slot = 0 THEN 'Лестничная площадка' ELSE 'Санузел' END,
       d.installed, d.installed, d.installed + CASE WHEN j.slot = 0 THEN 5844 ELSE 2191 END,
       CASE WHEN j.slot = 0 THEN 'РЭСК ' ELSE 'ВК ' END || lpad(({_rnd("a.i", 52)})::text, 7, '0'),
       d.installed, CAST(:created AS timestamptz), CAST(:created AS timestamptz)
FROM demo_acc AS a
CROSS JOIN LATERAL (SELECT CAST(:installed AS date) - ({_rnd("a.i", 51)} % 1500)::int AS installed) AS d
CROSS JOIN generate_series(0, {_METERS_PER_ACCOUNT - 1}) AS j(slot)
WHERE j.slot = 0 OR a.water_meter
"""

# Consumption per account, month and charge slot; readings and charges are both derived from it.
SQL_USAGE = f"""
CREATE TEMP TABLE demo_usage ON COMMIT DROP AS
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

# r = 0 is the base reading of the month before the history; r = m + 1 closes month m.
SQL_READINGS = f"""
INSERT INTO readings (id, meter_id, account_id, submission_id, zone, period, value, source,
    submitted_by_user_id,
                      submitted_at, accepted, accepted_at)
SELECT CAST(:r_base AS bigint)
           + ((v.k * {
    _METERS_PER_ACCOUNT
} + v.meter_slot) * (CAST(:months AS int) + 1) + v.r) * 2 + v.zone_slot,
       CAST(:m_base AS bigint) + v.k * {_METERS_PER_ACCOUNT} + v.meter_slot, v.account_id,
       CASE WHEN src.source IN ('CABINET', 'MOBILE')
            THEN CAST(:rs_base AS bigint) + v.k * (CAST(:months AS int) + 1) + v.r END,
       v.zone, (CAST(:p0 AS date) + (v.r - 1) * interval '1 month')::date, v.value, src.source,
       CASE WHEN src.source IN ('CABINET', 'MOBILE') THEN a.user_id END,
       {
    _local(
        "CAST(:p0 AS date) + (v.r - 1) * interval '1 month' + (a.win_start - 1) * interval '1 day'",
        "8 + v.r % 12",
    )
},
       true,
       {_local("CAST(:p0 AS date) + (v.r - 1) * interval '1 month' + a.win_end * interval '1 day'", "1")}
FROM (
    SELECT u.k, u.account_id, u.meter_slot, u.zone_slot, u.zone, u.m + 1 AS r,
           u.base_value + sum(u.volume) OVER (PARTITION BY u.k, u.slot ORDER BY u.m) AS value
    FROM demo_usage AS u WHERE u.metered
    UNION ALL
    SELECT u.k, u.account_id, u.meter_slot, u.zone_slot, u.zone, 0, u.base_value
    FROM demo_usage AS u WHERE u.metered AND u.m = 0
) AS v
JOIN demo_acc AS a ON a.k = v.k
CROSS JOIN LATERAL (SELECT CASE WHEN v.r = 0 THEN 'OPERATOR'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 9 THEN 'CABINET'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 17 THEN 'MOBILE'
                                WHEN {_rnd("a.i * 64 + v.r", 70)} % 20 < 19 THEN 'AMI'
                                ELSE 'OPERATOR' END AS source) AS src
"""

SQL_CHARGES = f"""
WITH inserted AS (
    INSERT INTO charges (id, account_id, period, service_id, supplier_id, zone, volume, rate, amount,
        recalculation,
                         created_at)
    SELECT CAST(:c_base AS bigint) + (c.k * CAST(:months AS int) + c.m) * {_CHARGE_SLOTS} + c.slot,
           c.account_id, c.period, c.service_id, c.supplier_id,
           CASE WHEN c.slot < 2 THEN c.zone END, c.volume, c.rate, c.amount,
           CASE WHEN c.slot = 0 AND {_rnd("c.i * 64 + c.m", 80)} % 40 = 0
                THEN CASE WHEN {_rnd("c.i * 64 + c.m", 81)} % 2 = 0 THEN -round(c.amount * 0.25, 2)
                          ELSE round(c.amount * 0.15, 2) END
                ELSE 0 END,
           {_local("c.period + interval '1 month'", "3")}
    FROM (
        SELECT u.*, r.rate, round(u.volume * r.rate, 2) AS amount
        FROM demo_usage AS u
        JOIN demo_rates AS r ON r.branch_id = u.branch_id AND r.service_id = u.service_id AND r.zone = u.zone
                             AND r.grp = u.grp AND r.period = u.period
    ) AS c
    RETURNING account_id, period, supplier_id, amount + recalculation AS total
)
INSERT INTO demo_due (k, m, account_id, period, supplier_id, sup_slot, charged)
SELECT account_id - CAST(:acc_base AS bigint),
       (extract(year FROM period) * 12 + extract(month FROM period) - 1)::int - CAST(:p0_index AS int),
       account_id, period, supplier_id,
       CASE WHEN supplier_id = CAST(:sup_resk AS bigint) THEN 0 ELSE 1 END, sum(total)
FROM inserted GROUP BY account_id, period, supplier_id
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

SQL_BALANCES_AND_RECEIPTS = f"""
WITH balances AS (
    INSERT INTO period_balances (id, account_id, supplier_id, period, opening, charged, paid, closing,
        created_at)
    SELECT CAST(:pb_base AS bigint) + (b.k * CAST(:months AS int) + b.m) * {_SUPPLIER_SLOTS} + b.sup_slot,
           b.account_id, b.supplier_id, b.period, b.closing - b.charged + b.paid, b.charged, b.paid,
               b.closing,
           {_local("b.period + interval '1 month'", "3")}
    FROM (
        SELECT d.*, coalesce(l.amount, 0) AS paid,
               sum(d.charged - coalesce(l.amount, 0)) OVER (PARTITION BY d.k, d.sup_slot ORDER BY d.m) AS
                   closing
        FROM demo_due AS d LEFT JOIN demo_alloc AS l ON l.k = d.k AND l.t = d.m AND l.sup_slot = d.sup_slot
    ) AS b
    RETURNING account_id, period, closing
)
INSERT INTO receipts (id, account_id, period, total_due, due_date, created_at)
SELECT CAST(:rc_base AS bigint) + (account_id - CAST(:acc_base AS bigint)) * CAST(:months AS int)
           + (extract(year FROM period) * 12 + extract(month FROM period) - 1)::int - CAST(:p0_index AS int),
       account_id, period, sum(closing), (period + interval '1 month 9 days')::date,
       {_local("period + interval '1 month'", "4")}
FROM balances GROUP BY account_id, period
"""

SQL_CHUNK_TEMPS = """
CREATE TEMP TABLE demo_due (k bigint, m int, account_id bigint, period date, supplier_id bigint, sup_slot int,
                            charged numeric) ON COMMIT DROP;
CREATE TEMP TABLE demo_alloc (k bigint, t int, sup_slot int, supplier_id bigint, account_id bigint, user_id
    bigint,
                              amount numeric, paid_at timestamptz, method text) ON COMMIT DROP
"""

SQL_RATES = """
CREATE TEMP TABLE demo_rates AS
SELECT t.branch_id, t.service_id, t.zone, p::date AS period, t.rate,
       CASE t.consumer_group WHEN CAST(:group_gas AS text) THEN 1 WHEN CAST(:group_electric AS text) THEN 2
            ELSE 0 END AS grp
FROM tariffs AS t
CROSS JOIN generate_series(CAST(:p0 AS date), CAST(:p_last AS date), interval '1 month') AS p
WHERE p::date >= t.valid_from AND (t.valid_to IS NULL OR p::date <= t.valid_to)
"""

# statement → rows counted under this table name
_CHUNK_STEPS: tuple[tuple[str, str | None], ...] = (
    (SQL_CHUNK_ACCOUNTS, None),
    (SQL_USERS, "users"),
    (SQL_CONSENTS, "consents"),
    (SQL_ACCOUNTS, "accounts"),
    (SQL_USER_ACCOUNTS, "user_accounts"),
    (SQL_ACCOUNT_SERVICES, "account_services"),
    (SQL_METERS, "meters"),
    (SQL_USAGE, None),
    ("ANALYZE demo_acc, demo_usage", None),
    (SQL_SUBMISSIONS, "reading_submissions"),
    (SQL_READINGS, "readings"),
    (SQL_CHARGES, None),
    ("ANALYZE demo_due", None),
    (SQL_PAYMENT_PLAN, None),
    ("ANALYZE demo_alloc", None),
    (SQL_PAYMENTS, "payments"),
    (SQL_ALLOCATIONS, "payment_allocations"),
    (SQL_BALANCES_AND_RECEIPTS, None),
)

_SYNTHETIC_TABLES = (
    "users",
    "consents",
    "accounts",
    "user_accounts",
    "account_services",
    "meters",
    "reading_submissions",
    "readings",
    "charges",
    "payments",
    "payment_allocations",
    "period_balances",
    "receipts",
)
# table → its id base parameter
_ID_BASES = {
    "users": "u_base",
    "consents": "cons_base",
    "accounts": "acc_base",
    "user_accounts": "ua_base",
    "account_services": "as_base",
    "meters": "m_base",
    "reading_submissions": "rs_base",
    "readings": "r_base",
    "charges": "c_base",
    "payments": "p_base",
    "payment_allocations": "pa_base",
    "period_balances": "pb_base",
    "receipts": "rc_base",
}


async def _load_synthetic(
    db: Database, *, count: int, months: int, today: dt.date, password_hash: str, counts: dict[str, int]
) -> None:
    """Append ``count`` synthetic accounts (with users and ``months`` of history) in parallel chunks."""
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
    end = start + count
    params: dict[str, Any] = {
        **bases,
        "i0": start,
        "u_first": first_user,
        "months": months,
        "p0": p0,
        "p0_index": p0.year * 12 + p0.month - 1,
        "today_day": today.day,
        "skip_fk_checks": bool(superuser),
        "created": _at(add_months(p0, -2), 12),
        "opened": add_months(p0, -24),
        "installed": add_months(p0, -1),
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
    # chunk boundaries at multiples of the group span (in global account numbering)
    bounds = [start]
    edge = (start // SYNTHETIC_CHUNK + 1) * SYNTHETIC_CHUNK
    while edge < end:
        bounds.append(edge)
        edge += SYNTHETIC_CHUNK
    bounds.append(end)
    chunks: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for low, high in itertools.pairwise(bounds):
        chunks.put_nowait((low - start, high - start))

    async def worker() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(
                text(SQL_RATES), _used(SQL_RATES, {**params, "p_last": add_months(current, -1)})
            )
            await conn.execute(text("ANALYZE demo_rates"))
            await conn.commit()
            try:
                while not chunks.empty():
                    k0, k1 = chunks.get_nowait()
                    await _load_chunk(conn, {**params, "k0": k0, "k1": k1}, counts)
            finally:
                await conn.execute(text("DROP TABLE IF EXISTS demo_rates"))
                await conn.commit()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(SYNTHETIC_WORKERS, chunks.qsize())):
            group.create_task(worker())
    async with db.engine.begin() as conn:
        await _fix_sequences(conn, _SYNTHETIC_TABLES)
        await conn.execute(text("ANALYZE"))
    counts["synthetic_users"] += synthetic_user_of_account(end - 1) - first_user + 1


async def _load_chunk(conn: AsyncConnection, params: dict[str, Any], counts: dict[str, int]) -> None:
    """One transaction: accounts ``k0..k1`` (run-local indexes) with everything that hangs off them."""
    async with conn.begin():
        await conn.execute(text("SET LOCAL synchronous_commit = off"))
        await conn.execute(text("SET LOCAL work_mem = '128MB'"))
        # the rows are consistent by construction, and FK triggers would cost half the time
        if params["skip_fk_checks"]:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in SQL_CHUNK_TEMPS.split(";"):
            await conn.execute(text(statement))
        for sql, table in _CHUNK_STEPS:
            result = await conn.execute(text(sql), _used(sql, params))
            if table is not None:
                counts[table] += result.rowcount
        totals = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM demo_usage), (SELECT count(*) FROM demo_due),"
                    " (SELECT count(DISTINCT (k, m)) FROM demo_due)"
                )
            )
        ).one()
        # (no await between reading and writing the shared counters: the other worker interleaves)
        counts["charges"] += totals[0]
        counts["period_balances"] += totals[1]
        counts["receipts"] += totals[2]


_BIND = re.compile(r"(?<![:\w]):(\w+)")


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that ``sql`` binds."""
    return {name: params[name] for name in set(_BIND.findall(sql))}
