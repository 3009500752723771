"""Operational checks: is the payload (inference) table healthy; which features drifted lately."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from workloads.monitoring.granularity import DEFAULT_GRANULARITY, parse_granularity
from workloads.monitoring.metrics import (
    EVALUATED_COLUMNS,
    drift_values,
    read_drift_metrics,
    recent_drift_where,
)
from workloads.monitoring.schema import ALL_MODELS, BASELINE
from workloads.ports.tables import SparkTables, Tables, get_tables
from workloads.settings import Settings
from workloads.specs import MODEL_ID_COLUMN, ModelSpec

PAYLOAD_COLUMNS = ("databricks_request_id", "client_request_id", "request_date", "request_time", "status_code",
                   "sampling_fraction", "execution_duration_ms", "request", "response", "served_entity_id",
                   "logging_error_codes", "requester")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class PayloadReport:
    table: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def check_payload_table(settings: Settings, spec: ModelSpec, max_age_hours: float = 24.0,
                        max_error_rate: float = 0.05, tables: Tables | None = None,
                        now: pd.Timestamp | None = None) -> PayloadReport:
    """Exists, has rows, newest request recent, AI Gateway columns present, error rate below the bound.

    Reads the table's column names and one summary of it (:func:`payload_summary`): in Spark an aggregate (one row
    to the driver), locally the two columns it needs.
    """
    tables = tables or get_tables(settings)
    name = settings.table(spec.payload_table)
    report = PayloadReport(name)
    if not tables.exists(name):
        report.checks.append(Check("exists", False, "table missing: deploy the endpoint and send traffic"))
        return report
    summary = payload_summary(tables, name)
    rows = summary.rows
    report.checks.append(Check("exists", True, f"{rows} row(s)"))
    missing = [c for c in PAYLOAD_COLUMNS if c not in summary.columns]
    report.checks.append(Check("schema", not missing, f"missing {missing}" if missing else "AI Gateway columns"))
    report.checks.append(Check("receiving rows", rows > 0, f"{rows} row(s)"))
    if rows and summary.newest is not None:
        newest = summary.newest
        now = now or pd.Timestamp.now(tz="UTC")
        age_h = (now - newest).total_seconds() / 3600.0
        when = f"{age_h:.1f} h ago" if age_h >= 0 else f"{-age_h:.1f} h ahead of this clock"
        report.checks.append(Check("recent", age_h <= max_age_hours,
                                   f"newest request {newest:%Y-%m-%d %H:%M} UTC ({when})"))
    if rows and summary.error_rate is not None:
        rate = summary.error_rate
        report.checks.append(Check("error rate", rate <= max_error_rate,
                                   f"{rate:.1%} non-2xx (bound {max_error_rate:.0%})"))
    return report


@dataclass(frozen=True)
class PayloadSummary:
    """What the inference-table check reads of the whole table.

    Attributes:
        columns: the table's column names.
        rows: its row count.
        newest: the latest ``request_time`` (UTC); ``None`` without that column or any time.
        error_rate: the share of rows whose ``status_code`` is not 2xx (missing or non-numeric counts as an error);
            ``None`` without that column.
    """

    columns: tuple[str, ...]
    rows: int
    newest: pd.Timestamp | None
    error_rate: float | None


def payload_summary(tables: Tables, name: str) -> PayloadSummary:
    """Row count, newest request and error rate of a payload table, without holding the table in this process.

    A Spark port computes them in one Spark SQL aggregate (:func:`payload_summary_sql`); locally only the
    ``request_time`` and ``status_code`` columns are read.
    """
    columns = tuple(tables.columns(name))
    if isinstance(tables, SparkTables):
        row = tables.spark.sql(payload_summary_sql(name, columns)).collect()[0].asDict()
        micros = row.get("newest_us")
        return PayloadSummary(columns, int(row["row_count"]), None if micros is None else pd.Timestamp(micros, unit="us", tz="UTC"),
                              None if row.get("error_rate") is None else float(row["error_rate"]))
    frame = tables.read(name, columns=[c for c in ("request_time", "status_code") if c in columns])
    newest = None
    if "request_time" in frame.columns and len(frame):
        newest = pd.to_datetime(frame["request_time"], utc=True).max()
        newest = None if pd.isna(newest) else newest
    error_rate = None
    if "status_code" in frame.columns and len(frame):
        codes = pd.to_numeric(frame["status_code"], errors="coerce")
        error_rate = float(((codes < 200) | (codes >= 300) | codes.isna()).mean())
    return PayloadSummary(columns, len(frame), newest, error_rate)


def payload_summary_sql(name: str, columns: tuple[str, ...]) -> str:
    """The Spark SQL aggregate of :func:`payload_summary` (``row_count``, ``newest_us``, ``error_rate``): one row.

    ``try_cast`` reads a non-numeric status code as null, an error, as ``pd.to_numeric(errors="coerce")`` does
    (and does not fail under ANSI mode, Databricks SQL's default).
    """
    # epoch microseconds: a collected timestamp would come back naive, in the session time zone
    newest = "unix_micros(max(`request_time`))" if "request_time" in columns else "CAST(NULL AS BIGINT)"
    code = "try_cast(`status_code` AS DOUBLE)"
    rate = (f"avg(CASE WHEN {code} >= 200 AND {code} < 300 THEN 0D ELSE 1D END)" if "status_code" in columns
            else "CAST(NULL AS DOUBLE)")
    return f"SELECT count(*) AS row_count, {newest} AS newest_us, {rate} AS error_rate FROM {name}"


@dataclass
class DriftRow:
    feature: str
    metric: str
    breached_windows: int
    first_breach: pd.Timestamp | None
    worst: float | None
    threshold: float


@dataclass
class DriftSummary:
    windows: int
    rows: list[DriftRow]


def drift_summary(settings: Settings, spec: ModelSpec, days: int = 7, granularity: str = DEFAULT_GRANULARITY,
                  tables: Tables | None = None) -> DriftSummary:
    """Per feature and drift threshold: how many of the last ``days`` days' windows breached, first and worst."""
    gran = parse_granularity(granularity).text
    tables = tables or get_tables(settings)
    drift = read_drift_metrics(settings, spec, tables, columns=EVALUATED_COLUMNS,
                               spark_where=recent_drift_where(settings, spec, tables, gran, days))
    d = drift[(drift["granularity"] == gran) & (drift["drift_type"] == BASELINE) & drift["slice_key"].isna()
              & (drift[MODEL_ID_COLUMN] == ALL_MODELS) & drift["column_name"].isin(spec.feature_names)]
    if d.empty:
        return DriftSummary(0, [])
    since = d["window_start"].max() - pd.Timedelta(days=days)
    d = d[d["window_start"] > since].sort_values("window_start")
    windows = d["window_start"].nunique()
    rows = []
    for feature in spec.feature_names:
        fd = d[d["column_name"] == feature]
        values = [(r["window_start"], drift_values(r)) for _, r in fd.iterrows()]
        for metric, threshold in spec.drift_thresholds.items():
            series = [(ts, v[metric]) for ts, v in values if metric in v]
            if not series:
                continue
            breaches = [(ts, x) for ts, x in series if threshold.breached(x)]
            worst = max(series, key=lambda p: p[1] if threshold.direction == "max" else -p[1])[1]
            rows.append(DriftRow(feature, metric, len(breaches), breaches[0][0] if breaches else None, worst,
                                 threshold.value))
    rows.sort(key=lambda r: (-r.breached_windows, r.feature))
    return DriftSummary(windows, rows)


def metrics_staleness(settings: Settings, spec: ModelSpec, tables: Tables | None = None) -> str | None:
    """Whether the monitor's metric tables lag the processed table, as one sentence (``None``: they are current).

    Compares the newest ``logging_table_commit_version`` on the profile rows (the processed table's Delta version
    the last refresh read, as Lakehouse Monitoring records it) with the processed table's version now.
    """
    tables = tables or get_tables(settings)
    processed = settings.table(spec.processed_table)
    profile = settings.metrics_table(spec.profile_metrics_table)
    if not tables.exists(processed):
        return None
    current = tables.version(processed)
    if not tables.exists(profile):
        return (f"the monitor has never been refreshed (the processed table is at version {current}): run "
                f"`mlops monitor refresh -m {spec.name}`")
    if "logging_table_commit_version" not in tables.columns(profile):
        return None
    read = tables.read(profile, ["logging_table_commit_version"])["logging_table_commit_version"]
    if read.dropna().empty:
        return None
    refreshed = int(read.max())
    if refreshed >= current:
        return None
    return (f"these values were computed from version {refreshed} of {processed}, which is at version {current} "
            f"now: rows since are not in them; run `mlops monitor refresh -m {spec.name}` for current values")
