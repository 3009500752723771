"""Operational checks: is the payload (inference) table healthy; which features drifted lately."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from workloads.monitoring.granularity import DEFAULT_GRANULARITY, parse_granularity
from workloads.monitoring.metrics import drift_values, read_metric_tables
from workloads.monitoring.schema import ALL_MODELS, BASELINE
from workloads.ports.tables import Tables, get_tables
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
    """Exists, has rows, newest request recent, AI Gateway columns present, error rate below the bound."""
    tables = tables or get_tables(settings)
    name = settings.table(spec.payload_table)
    report = PayloadReport(name)
    if not tables.exists(name):
        report.checks.append(Check("exists", False, "table missing: deploy the endpoint and send traffic"))
        return report
    frame = tables.read(name)
    report.checks.append(Check("exists", True, f"{len(frame)} row(s)"))
    missing = [c for c in PAYLOAD_COLUMNS if c not in frame.columns]
    report.checks.append(Check("schema", not missing, f"missing {missing}" if missing else "AI Gateway columns"))
    report.checks.append(Check("receiving rows", len(frame) > 0, f"{len(frame)} row(s)"))
    if len(frame) and "request_time" in frame.columns:
        newest = pd.to_datetime(frame["request_time"], utc=True).max()
        now = now or pd.Timestamp.now(tz="UTC")
        age_h = (now - newest).total_seconds() / 3600.0
        when = f"{age_h:.1f} h ago" if age_h >= 0 else f"{-age_h:.1f} h ahead of this clock"
        report.checks.append(Check("recent", age_h <= max_age_hours,
                                   f"newest request {newest:%Y-%m-%d %H:%M} UTC ({when})"))
    if len(frame) and "status_code" in frame.columns:
        codes = pd.to_numeric(frame["status_code"], errors="coerce")
        rate = float(((codes < 200) | (codes >= 300) | codes.isna()).mean())
        report.checks.append(Check("error rate", rate <= max_error_rate,
                                   f"{rate:.1%} non-2xx (bound {max_error_rate:.0%})"))
    return report


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
    _, drift = read_metric_tables(settings, spec, tables)
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
