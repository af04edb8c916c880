"""De-personalised analytics (issue 17): monthly rollups, queries with suppression, CSV export.

- :mod:`services.analytics.catalog` — measures, dimensions, what each counts;
- :mod:`services.analytics.refresh` — ``refresh(session, periods=…, account_ids=…)`` rebuilds rollups;
- :mod:`services.analytics.query` — ``run(session, query)`` and ``export_csv(connection, query)``.
"""

from services.analytics.catalog import Dimension, Granularity, Measure
from services.analytics.query import AnalyticsError, AnalyticsQuery, Comparison, Result, export_csv, run
from services.analytics.refresh import REFRESH_EVERY, refresh, refresh_job

__all__ = [
    "REFRESH_EVERY",
    "AnalyticsError",
    "AnalyticsQuery",
    "Comparison",
    "Dimension",
    "Granularity",
    "Measure",
    "Result",
    "export_csv",
    "refresh",
    "refresh_job",
    "run",
]
