"""Answering analytics queries from the rollups only, with small-cell suppression (issue 17).

Each measure is answered by one aggregate over its family's rollup rows at the grouping set that has
exactly the requested and filtered dimensions, so distinct counts are exact within a month. Cells:

- *primary suppression*: a cell that describes fewer than :data:`MIN_SUBJECTS` accounts (customers for
  cabinets and registrations) has no value. For cells longer than a month the number of accounts is the
  largest monthly count — a lower bound of the distinct accounts, so the rule errs on the safe side.
- *complementary suppression*: along every line of the result (cells that differ in one dimension only,
  whose sum the analyst can get from a coarser query or the totals), a line with exactly one suppressed
  cell gets its smallest other cell suppressed too; repeated until no line has a lone suppressed cell.
  Only the keys of cells suppressed this way are held in memory; the cells themselves stay in PostgreSQL
  until they are streamed (the CSV export reads them through a server-side cursor).
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.analytics.catalog import (
    DIMENSION_COLUMN,
    FAMILIES,
    MEASURES,
    Dimension,
    Granularity,
    Kind,
    Measure,
    Temporal,
    applicable,
)
from services.errors import DomainError
from services.periods import add_months

MIN_SUBJECTS = 10
"""A cell describing fewer accounts (or customers) than this is suppressed."""

MAX_MONTHS = 120
"""Longest period range of one query."""

MAX_ROWS = 5000
"""Most rows one GraphQL answer may have (the CSV export has no limit: it streams)."""

MAX_ROUNDS = 50
"""Most rounds of complementary suppression (each adds at least one cell; real queries need 1–3)."""

EXPORT_CHUNK_ROWS = 2000
"""Rows fetched per round trip of the export's server-side cursor (and per CSV chunk sent)."""


class Comparison(enum.StrEnum):
    """Which earlier range to compare with."""

    PREVIOUS_PERIOD = "PREVIOUS_PERIOD"
    YEAR_EARLIER = "YEAR_EARLIER"


class Suppression(enum.StrEnum):
    """Why a cell has no value."""

    FEW_SUBJECTS = "FEW_SUBJECTS"
    COMPLEMENTARY = "COMPLEMENTARY"


class AnalyticsError(DomainError):
    """A query the analytics API refuses."""

    code = "ANALYTICS_INVALID"
    message = "Некорректный аналитический запрос"


class DimensionNotApplicable(AnalyticsError):
    code = "ANALYTICS_DIMENSION_NOT_APPLICABLE"
    message = "Показатель нельзя разбить по этому измерению"


class FilterNotApplicable(AnalyticsError):
    code = "ANALYTICS_FILTER_NOT_APPLICABLE"
    message = "Показатель нельзя отфильтровать по этому измерению"


class BadPeriodRange(AnalyticsError):
    code = "ANALYTICS_BAD_PERIOD_RANGE"
    message = f"Период задан неверно: начало не позже конца, не более {MAX_MONTHS} месяцев"


class NoMeasures(AnalyticsError):
    code = "ANALYTICS_NO_MEASURES"
    message = "Выберите хотя бы один показатель"


class TooManyRows(AnalyticsError):
    code = "ANALYTICS_TOO_MANY_ROWS"
    message = f"Слишком много строк (более {MAX_ROWS}): сузьте запрос или выгрузите его в CSV"


@dataclass(frozen=True)
class AnalyticsQuery:
    """One analyst question. ``filters`` map a dimension (not PERIOD) to one value: an id for BRANCH,
    SUPPLIER and SERVICE, a code for the others."""

    measures: tuple[Measure, ...]
    first: dt.date
    last: dt.date
    dimensions: tuple[Dimension, ...] = ()
    granularity: Granularity = Granularity.MONTH
    filters: dict[Dimension, int | str] = field(default_factory=dict)
    compare: Comparison | None = None

    def validate(self) -> None:
        """Raise an :class:`AnalyticsError` for a query that cannot be answered."""
        if not self.measures:
            raise NoMeasures(field=["query", "measures"])
        months = (self.last.year - self.first.year) * 12 + self.last.month - self.first.month + 1
        if months < 1 or months > MAX_MONTHS:
            raise BadPeriodRange(field=["query", "periods"])
        for measure in self.measures:
            allowed = applicable(measure)
            for dimension in self.dimensions:
                if dimension is not Dimension.PERIOD and dimension not in allowed:
                    raise DimensionNotApplicable(
                        field=["query", "dimensions"], measure=measure.value, dimension=dimension.value
                    )
            for dimension in self.filters:
                if dimension not in allowed:
                    raise FilterNotApplicable(
                        field=["query", "filters"], measure=measure.value, dimension=dimension.value
                    )

    @property
    def months(self) -> int:
        return (self.last.year - self.first.year) * 12 + self.last.month - self.first.month + 1

    def comparison_offset(self) -> int | None:
        """How many months earlier the comparison range lies."""
        if self.compare is Comparison.PREVIOUS_PERIOD:
            return self.months
        if self.compare is Comparison.YEAR_EARLIER:
            return 12
        return None


@dataclass(slots=True)
class Cell:
    """One measure's value in one row (``value`` None when suppressed or no data)."""

    measure: Measure
    value: Decimal | int | float | None
    subjects: int | None
    suppression: Suppression | None = None
    comparison: Cell | None = None

    @property
    def suppressed(self) -> bool:
        return self.suppression is not None


Key = tuple[Any, ...]
"""A row's dimension values: the period label first when PERIOD is asked, then the other dimensions."""


@dataclass(slots=True)
class Result:
    """Rows (keys → cells aligned with the query's measures) and the totals."""

    query: AnalyticsQuery
    key_dimensions: tuple[Dimension, ...]
    rows: list[tuple[Key, list[Cell]]]
    totals: list[Cell]


# --------------------------------------------------------------------------------------------- SQL


def _key_dimensions(query: AnalyticsQuery) -> tuple[Dimension, ...]:
    """PERIOD first (when asked), then the other dimensions in the order asked."""
    others = tuple(d for d in query.dimensions if d is not Dimension.PERIOD)
    return ((Dimension.PERIOD,) if Dimension.PERIOD in query.dimensions else ()) + others


_BUCKET = {
    Granularity.MONTH: "to_char(sp, 'YYYY-MM')",
    Granularity.QUARTER: "to_char(sp, 'YYYY-\"Q\"Q')",
    Granularity.YEAR: "to_char(sp, 'YYYY')",
}


@dataclass(frozen=True)
class _Plan:
    """The SQL of one measure's cells (a CTE body) and its parameters."""

    cells: str
    params: dict[str, Any]
    key_columns: list[str]


def _plan(
    query: AnalyticsQuery, measure: Measure, dimensions: Sequence[Dimension], offset: int, tag: str = ""
) -> _Plan:
    """The cells of one measure; ``tag`` suffixes its parameter names (several plans in one statement)."""
    spec = MEASURES[measure]
    family = FAMILIES[spec.family]
    used = {d for d in dimensions if d is not Dimension.PERIOD} | set(query.filters)
    bits = len(family.dimensions)
    grouping = sum(1 << (bits - 1 - i) for i, d in enumerate(family.dimensions) if d not in used)
    params: dict[str, Any] = {
        f"family{tag}": family.name,
        f"grouping{tag}": grouping,
        f"first{tag}": add_months(query.first, -offset),
        f"last{tag}": add_months(query.last, -offset),
        f"offset{tag}": offset,
    }
    where = [
        f"r.family = :family{tag}",
        f"r.grouping = :grouping{tag}",
        f"r.period BETWEEN :first{tag} AND :last{tag}",
    ]
    for index, (dimension, value) in enumerate(sorted(query.filters.items())):
        column = DIMENSION_COLUMN[dimension]
        where.append(f"r.{column} = :f{index}{tag}")
        params[f"f{index}{tag}"] = value
    period_asked = Dimension.PERIOD in dimensions
    bucket = _BUCKET[query.granularity] if period_asked else "CAST(NULL AS text)"
    dim_columns = [DIMENSION_COLUMN[d] for d in dimensions if d is not Dimension.PERIOD]
    key_columns = (["bucket"] if period_asked else []) + dim_columns
    select_dims = "".join(f"r.{c}, " for c in dim_columns)
    samples = spec.kind is Kind.SECONDS
    base = (
        f"SELECT {bucket} AS bucket, {select_dims}r.period, r.subjects, r.{spec.column} AS num"
        + (f", r.{spec.denominator} AS den" if spec.denominator else "")
        + f", r.period = max(r.period) OVER (PARTITION BY {bucket}) AS is_last"
        + " FROM (SELECT *, CAST(period + make_interval(months => "
        + f"CAST(:offset{tag} AS integer)) AS date) AS sp"
        + " FROM analytics_rollups) AS r WHERE "
        + " AND ".join(where)
    )
    only_last = " FILTER (WHERE is_last)" if spec.temporal is Temporal.STOCK else ""
    if samples:
        value = f"percentile_cont({spec.quantile}) WITHIN GROUP (ORDER BY x)"
        subjects = "least(max(subjects), count(x))"
        source = f"({base}) AS b LEFT JOIN LATERAL unnest(b.num) AS s(x) ON true"
    else:
        if spec.kind is Kind.SHARE:
            value = f"CAST(sum(num){only_last} AS float8) / nullif(sum(den){only_last}, 0)"
        else:
            value = f"sum(num){only_last}"
        subjects = f"max(subjects){only_last}"
        source = f"({base}) AS b"
    group_columns = ["bucket", *dim_columns]
    key_parts = " , ".join(f"coalesce(CAST({c} AS text), '')" for c in key_columns) or "''"
    having = " HAVING bool_or(is_last)" if spec.temporal is Temporal.STOCK else ""
    cells = (
        f"SELECT {', '.join(group_columns)}, {value} AS value, {subjects} AS subjects, "
        f"concat_ws(chr(31), {key_parts}) AS key FROM {source} GROUP BY {', '.join(group_columns)}{having}"
    )
    return _Plan(cells, params, key_columns)


_EXTRA = bindparam("extra", type_=ARRAY(TEXT))


async def _complementary(conn: AsyncSession | AsyncConnection, plan: _Plan) -> set[str]:
    """Keys of the cells complementary suppression adds (rounds until no line has a lone suppressed cell)."""
    keys = plan.key_columns
    if not keys:
        return set()
    lines = []
    for index in range(len(keys)):
        others = [c for i, c in enumerate(keys) if i != index]
        partition = f"PARTITION BY {', '.join(others)}" if others else ""
        lines.append(
            f"count(*) FILTER (WHERE sup) OVER ({partition}) AS n{index}, "
            f'row_number() OVER ({partition} ORDER BY sup, coalesce(subjects, 0), key COLLATE "C") '
            f"AS r{index}"
        )
    lone = " OR ".join(f"(n{i} = 1 AND r{i} = 1)" for i in range(len(keys)))
    sql = (
        f"WITH cells AS ({plan.cells}), "
        f"f AS (SELECT *, (coalesce(subjects, 0) < {MIN_SUBJECTS} OR key = ANY(:extra)) AS sup FROM cells), "
        f"l AS (SELECT key, sup, {', '.join(lines)} FROM f) "
        f"SELECT key FROM l WHERE NOT sup AND ({lone})"
    )
    statement = text(sql).bindparams(_EXTRA)
    extra: set[str] = set()
    for _ in range(MAX_ROUNDS):
        found = await conn.execute(statement, {**plan.params, "extra": sorted(extra)})
        new = {row[0] for row in found} - extra
        if not new:
            return extra
        extra |= new
    raise RuntimeError("complementary suppression did not settle")  # pragma: no cover - bounded by cells


def _final_sql(plan: _Plan, limit: int | None) -> str:
    order = f" ORDER BY {', '.join(plan.key_columns)}" if plan.key_columns else ""
    columns = "".join(f"{c}, " for c in plan.key_columns)
    return (
        f"WITH cells AS ({plan.cells}) SELECT {columns}"
        f"CASE WHEN coalesce(subjects, 0) < {MIN_SUBJECTS} OR key = ANY(:extra) THEN NULL ELSE value END,"
        f" subjects, coalesce(subjects, 0) < {MIN_SUBJECTS}, key = ANY(:extra) FROM cells{order}"
        + (f" LIMIT {limit}" if limit is not None else "")
    )


def _convert(measure: Measure, value: Any) -> Decimal | int | float | None:
    if value is None:
        return None
    kind = MEASURES[measure].kind
    if kind is Kind.MONEY:
        return Decimal(value).quantize(Decimal("0.01"))
    if kind is Kind.QUANTITY:
        return Decimal(value).quantize(Decimal("0.001"))
    if kind is Kind.COUNT:
        return int(value)
    return float(value)


def _cell(measure: Measure, row: Sequence[Any]) -> tuple[Key, Cell]:
    *key, value, subjects, primary, complementary = row
    reason = Suppression.FEW_SUBJECTS if primary else Suppression.COMPLEMENTARY if complementary else None
    return tuple(key), Cell(measure, _convert(measure, value), subjects, reason)


_ID_DIMENSIONS = frozenset({Dimension.BRANCH, Dimension.SUPPLIER, Dimension.SERVICE})


def complementary_in_memory(
    cells: Sequence[tuple[Key, int | None, str]], width: int
) -> dict[int, Suppression]:
    """The same rule as :func:`_complementary` on cells already fetched (``(key, subjects, sort key)``):
    indexes of suppressed cells → why. Each round looks at every line with the set as the round began."""
    hidden: dict[int, Suppression] = {
        i: Suppression.FEW_SUBJECTS
        for i, (_, subjects, _) in enumerate(cells)
        if (subjects or 0) < MIN_SUBJECTS
    }
    if width == 0:
        return hidden
    lines: list[list[int]] = []
    for axis in range(width):
        by_line: dict[Key, list[int]] = {}
        for i, (key, _, _) in enumerate(cells):
            by_line.setdefault(key[:axis] + key[axis + 1 :], []).append(i)
        lines.extend(by_line.values())
    for _ in range(MAX_ROUNDS):
        added: set[int] = set()
        for line in lines:
            if sum(i in hidden for i in line) != 1:
                continue
            shown = [i for i in line if i not in hidden]
            if shown:
                added.add(min(shown, key=lambda i: ((cells[i][1] or 0), cells[i][2])))
        if not added:
            return hidden
        hidden.update(dict.fromkeys(added, Suppression.COMPLEMENTARY))
    raise RuntimeError("complementary suppression did not settle")  # pragma: no cover


def _answer_sql(
    query: AnalyticsQuery, dimensions: Sequence[Dimension], offset: int
) -> tuple[str, dict[str, Any]]:
    """One statement for every measure's cells and totals: ``m, total, key columns (text), value, subjects,
    sort key``."""
    width = len(dimensions)
    parts, params = [], {}
    for index, measure in enumerate(query.measures):
        for total, dims in ((False, dimensions), (True, ())):
            tag = f"_{index}{'t' if total else 'c'}"
            plan = _plan(query, measure, dims, offset, tag)
            params.update(plan.params)
            columns = [f"CAST({c} AS text)" for c in plan.key_columns] or []
            columns += ["CAST(NULL AS text)"] * (width - len(columns))
            limit = "" if total else f" LIMIT {MAX_ROWS + 1}"
            parts.append(
                f"(SELECT {index} AS m, {'true' if total else 'false'} AS t, "
                + "".join(f"{c}, " for c in columns)
                + f"CAST(value AS numeric) AS value, subjects, key FROM ({plan.cells}) AS c{tag}{limit})"
            )
    return " UNION ALL ".join(parts), params


async def _answer(
    session: AsyncSession, query: AnalyticsQuery, offset: int
) -> tuple[dict[Key, list[Cell | None]], list[Cell]]:
    dimensions = _key_dimensions(query)
    width = len(dimensions)
    sql, params = _answer_sql(query, dimensions, offset)
    found: Sequence[Any] = (await session.execute(text(sql), params)).all()
    per_measure: list[list[tuple[Key, Any, int | None, str]]] = [[] for _ in query.measures]
    totals: list[Cell] = [Cell(m, None, 0) for m in query.measures]
    for m, total, *rest in found:
        *raw_key, value, subjects, sort_key = rest
        measure = query.measures[m]
        if total:
            reason = Suppression.FEW_SUBJECTS if (subjects or 0) < MIN_SUBJECTS else None
            totals[m] = Cell(measure, None if reason else _convert(measure, value), subjects, reason)
            continue
        key = tuple(
            int(v) if v is not None and d in _ID_DIMENSIONS else v
            for d, v in zip(dimensions, raw_key, strict=True)
        )
        per_measure[m].append((key, value, subjects, sort_key))
    rows: dict[Key, list[Cell | None]] = {}
    for m, cells in enumerate(per_measure):
        if len(cells) > MAX_ROWS:
            raise TooManyRows(field=["query"])
        measure = query.measures[m]
        hidden = complementary_in_memory([(k, subjects, sort) for k, _, subjects, sort in cells], width)
        for i, (key, value, subjects, _) in enumerate(cells):
            reason = hidden.get(i)
            cell = Cell(measure, None if reason else _convert(measure, value), subjects, reason)
            rows.setdefault(key, [None] * len(query.measures))[m] = cell
    return rows, totals


async def run(session: AsyncSession, query: AnalyticsQuery) -> Result:
    """Answer ``query`` from the rollups (validated first; :class:`AnalyticsError` when refused)."""
    query.validate()
    rows, totals = await _answer(session, query, 0)
    offset = query.comparison_offset()
    if offset is not None:
        earlier, earlier_totals = await _answer(session, query, offset)
        for key, cells in rows.items():
            previous = earlier.get(key, [None] * len(query.measures))
            for cell, before in zip(cells, previous, strict=True):
                if cell is not None:
                    cell.comparison = before
        for cell, before in zip(totals, earlier_totals, strict=True):
            cell.comparison = before
    ordered = sorted(rows.items(), key=lambda item: tuple((v is None, str(v)) for v in item[0]))
    filled = [
        (
            key,
            [c if c is not None else Cell(m, None, None) for c, m in zip(cells, query.measures, strict=True)],
        )
        for key, cells in ordered
    ]
    return Result(query, _key_dimensions(query), filled, totals)


# ------------------------------------------------------------------------------------------- labels


async def labels(session: AsyncSession | AsyncConnection) -> dict[Dimension, dict[Any, str]]:
    """Names of branches, suppliers and services (reference data, a few rows each)."""
    out: dict[Dimension, dict[Any, str]] = {}
    for dimension, table in (
        (Dimension.BRANCH, "branches"),
        (Dimension.SUPPLIER, "suppliers"),
        (Dimension.SERVICE, "services"),
    ):
        found = await session.execute(text(f"SELECT id, name FROM {table}"))
        out[dimension] = {row[0]: row[1] for row in found}
    return out


# ------------------------------------------------------------------------------------------- export


CSV_HEADER = ["measure", "value", "suppressed", "suppression_reason", "total"]
CSV_COMPARISON_HEADER = ["comparison_value", "comparison_suppressed", "comparison_suppression_reason"]
"""Columns after the dimensions; the comparison ones only when the query has ``compare``."""


def _export_sql(plan: _Plan, earlier: _Plan | None) -> str:
    """Like :func:`_final_sql` (no limit), with the earlier range's cell joined by key when asked."""
    order = f" ORDER BY {', '.join(f'c.{k}' for k in plan.key_columns)}" if plan.key_columns else ""
    columns = "".join(f"c.{k}, " for k in plan.key_columns)
    sql = (
        f"WITH cells AS ({plan.cells})"
        + (f", prev AS ({earlier.cells})" if earlier is not None else "")
        + f" SELECT {columns}"
        f"CASE WHEN coalesce(c.subjects, 0) < {MIN_SUBJECTS} OR c.key = ANY(:extra) THEN NULL "
        f"ELSE c.value END, c.subjects, coalesce(c.subjects, 0) < {MIN_SUBJECTS}, c.key = ANY(:extra)"
    )
    if earlier is not None:
        sql += (
            f", CASE WHEN coalesce(p.subjects, 0) < {MIN_SUBJECTS} OR p.key = ANY(:extra_p) THEN NULL "
            f"ELSE p.value END, p.subjects, p.key IS NOT NULL AND coalesce(p.subjects, 0) < {MIN_SUBJECTS},"
            " p.key = ANY(:extra_p) FROM cells AS c LEFT JOIN prev AS p ON p.key = c.key"
        )
    else:
        sql += " FROM cells AS c"
    return sql + order


def _export_statement(plan: _Plan, earlier: _Plan | None) -> Any:
    statement = text(_export_sql(plan, earlier))
    if earlier is None:
        return statement.bindparams(_EXTRA)
    return statement.bindparams(_EXTRA, bindparam("extra_p", type_=ARRAY(TEXT)))


def _csv_cell(cell: Cell | None) -> list[Any]:
    if cell is None:
        return ["", "false", ""]
    return [
        "" if cell.value is None else cell.value,
        "true" if cell.suppressed else "false",
        cell.suppression.value if cell.suppression else "",
    ]


def _split_row(measure: Measure, row: Sequence[Any], compared: bool) -> tuple[Key, Cell, Cell | None]:
    """A row of :func:`_export_sql`: key, cell and (when compared) the earlier cell (None: no data)."""
    if not compared:
        key, cell = _cell(measure, row)
        return key, cell, None
    *rest, p_value, p_subjects, p_primary, p_complementary = row
    key, cell = _cell(measure, rest)
    if p_subjects is None and p_value is None and not p_complementary:
        return key, cell, None
    _, earlier = _cell(measure, [p_value, p_subjects, p_primary, p_complementary])
    return key, cell, earlier


async def export_csv(conn: AsyncConnection, query: AnalyticsQuery) -> AsyncIterator[bytes]:
    """The query as CSV in long form (one line per row and measure, then each measure's totals line with
    ``total`` true and empty dimension columns), streamed: each measure's cells are read through a
    server-side cursor :data:`EXPORT_CHUNK_ROWS` at a time and sent as they come, so an export of any size
    holds one chunk (plus the keys of complementary-suppressed cells) in memory. With ``compare`` every
    line also carries the same cell of the earlier range (joined by key in SQL, suppressed by the same
    rules)."""
    from services.appeals import TOPICS

    query.validate()
    names = await labels(conn)
    names[Dimension.APPEAL_TOPIC] = dict(TOPICS)
    dimensions = _key_dimensions(query)
    offset = query.comparison_offset()
    compared = offset is not None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [d.value.lower() for d in dimensions] + CSV_HEADER + (CSV_COMPARISON_HEADER if compared else [])
    )
    yield buffer.getvalue().encode()
    for measure in query.measures:
        plan = _plan(query, measure, dimensions, 0)
        params = {**plan.params, "extra": sorted(await _complementary(conn, plan))}
        earlier = None
        if offset is not None:
            earlier = _plan(query, measure, dimensions, offset, "_p")
            params |= {**earlier.params, "extra_p": sorted(await _complementary(conn, earlier))}
        stream = await conn.stream(_export_statement(plan, earlier), params)
        async for chunk in stream.partitions(EXPORT_CHUNK_ROWS):
            buffer.seek(0)
            buffer.truncate()
            for row in chunk:
                key, cell, before = _split_row(measure, row, compared)
                labels_ = [
                    names.get(d, {}).get(v, v) if v is not None else ""
                    for d, v in zip(dimensions, key, strict=True)
                ]
                writer.writerow(
                    [*labels_, measure.value, *_csv_cell(cell), "false"]
                    + (_csv_cell(before) if compared else [])
                )
            yield buffer.getvalue().encode()
        # the totals line: the measure over the whole range and filters (suppressed like `totals`)
        total = _plan(query, measure, (), 0)
        total_params = {**total.params, "extra": []}
        total_earlier = None
        if offset is not None:
            total_earlier = _plan(query, measure, (), offset, "_p")
            total_params |= {**total_earlier.params, "extra_p": []}
        found = (await conn.execute(_export_statement(total, total_earlier), total_params)).all()
        buffer.seek(0)
        buffer.truncate()
        cell, before = Cell(measure, None, 0), None
        if found:
            _, cell, before = _split_row(measure, found[0], compared)
        writer.writerow(
            [""] * len(dimensions)
            + [measure.value, *_csv_cell(cell), "true"]
            + (_csv_cell(before) if compared else [])
        )
        yield buffer.getvalue().encode()
