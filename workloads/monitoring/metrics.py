"""Reading the monitor's metric tables: the same code on both runtimes (through the tables port).

:func:`latest_window_metrics` is what evaluation (the watcher) uses: the latest INPUT window's model quality
(for ``*`` and per model version), its row and labelled counts, and per-feature BASELINE drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from workloads.clock import as_utc
from workloads.errors import MlopsError
from workloads.metric_names import with_aliases
from workloads.monitoring.granularity import DEFAULT_GRANULARITY, parse_granularity
from workloads.monitoring.schema import (
    ALL_MODELS,
    BASELINE,
    CLASSIFICATION_AVERAGED,
    INPUT,
    REGRESSION_METRICS,
    TABLE_COLUMN,
)
from workloads.ports.tables import SparkTables, Tables, get_tables
from workloads.settings import Settings
from workloads.specs import MODEL_ID_COLUMN, ModelSpec

# Short names used in spec thresholds -> metric table columns.
DRIFT_METRICS = ("ks_test.statistic", "ks_test.pvalue", "wasserstein_distance", "population_stability_index",
                 "chi_squared_test.statistic", "chi_squared_test.pvalue", "tv_distance", "l_infinity_distance",
                 "js_distance")


class MetricsNotFoundError(MlopsError):
    """The monitor has not written metrics for a model (or granularity) yet."""


def struct_field(value, name: str):
    """Field ``name`` of a struct value as read back from a metric table (dict, Spark Row or object); None for
    a null struct."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, dict):
        return value.get(name)
    if hasattr(value, "asDict"):  # a Spark Row
        return value.asDict().get(name)
    return getattr(value, name, None)


def _num(value) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _timestamp(value) -> pd.Timestamp | None:
    return None if value is None else as_utc(value)


# The metric-table columns the readers here (and the report and the drift summary) use: what evaluation reads.
EVALUATED_COLUMNS = ("window", "granularity", "log_type", "slice_key", "column_name", MODEL_ID_COLUMN, "drift_type",
                     "count", "distinct_count", *REGRESSION_METRICS, "mean_average_error", "accuracy_score",
                     *CLASSIFICATION_AVERAGED, *dict.fromkeys(m.split(".")[0] for m in DRIFT_METRICS))


def read_metric_tables(settings: Settings, spec: ModelSpec, tables: Tables | None = None,
                       columns: Sequence[str] | None = None, spark_where: str | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both metric tables as pandas, with ``window_start`` / ``window_end`` columns added (UTC).

    Args:
        settings: where the tables are.
        spec: whose metric tables.
        tables: the tables port (default: the configured backend's).
        columns: read only these columns of each table, where it has them (e.g. :data:`EVALUATED_COLUMNS`);
            default: every column. ``window`` is always read.
        spark_where: a Spark SQL predicate over both tables applied in Spark before anything reaches the driver
            (e.g. :func:`granularity_sql`); locally every row is read. It must keep every row the caller uses: it
            narrows the read, never the answer.
    """
    tables = tables or get_tables(settings)
    names = _existing_metric_tables(settings, spec, tables)
    profile, drift = (_read_metric_table(tables, name, columns, spark_where) for name in names)
    return profile, drift


def read_drift_metrics(settings: Settings, spec: ModelSpec, tables: Tables | None = None,
                       columns: Sequence[str] | None = None, spark_where: str | None = None) -> pd.DataFrame:
    """The drift metric table alone, read as :func:`read_metric_tables` reads it (both tables must exist)."""
    tables = tables or get_tables(settings)
    return _read_metric_table(tables, _existing_metric_tables(settings, spec, tables)[1], columns, spark_where)


def _existing_metric_tables(settings: Settings, spec: ModelSpec, tables: Tables) -> tuple[str, str]:
    """The profile and drift metric table names; :class:`MetricsNotFoundError` unless both exist."""
    names = settings.metrics_table(spec.profile_metrics_table), settings.metrics_table(spec.drift_metrics_table)
    missing = [n for n in names if not tables.exists(n)]
    if missing:
        raise MetricsNotFoundError(f"no monitor metrics for {spec.name} yet ({', '.join(missing)} missing); "
                                   f"run `mlops monitor refresh --model {spec.name}`")
    return names


def _read_metric_table(tables: Tables, name: str, columns: Sequence[str] | None,
                       spark_where: str | None) -> pd.DataFrame:
    wanted = None
    if columns is not None:
        present = set(tables.columns(name))
        wanted = [c for c in dict.fromkeys(["window", *columns]) if c in present]
    if spark_where is not None and isinstance(tables, SparkTables):
        frame = tables.frame(name, columns=wanted).where(spark_where).toPandas()
    else:
        frame = tables.read(name, columns=wanted)
    # BASELINE profile rows have no window (null, as on Databricks): NaT there.
    for edge in ("start", "end"):
        values = frame["window"].map(lambda w, e=edge: _timestamp(struct_field(w, e)))
        frame[f"window_{edge}"] = pd.to_datetime(values, utc=True)
    return frame


def granularity_sql(granularity: str) -> str:
    """Spark SQL predicate: the metric rows of one granularity (``granularity`` as :func:`parse_granularity` spells
    it)."""
    return f"`granularity` = '{parse_granularity(granularity).text}'"


def _latest_start_us(tables: SparkTables, name: str, predicate: str) -> int | None:
    """Epoch microseconds of the latest ``window.start`` among the rows ``predicate`` selects (one aggregate row to
    the driver; epoch, as a collected timestamp would come back naive in the session time zone); ``None``: no row."""
    row = tables.spark.sql(f"SELECT unix_micros(max(`window`.`start`)) AS latest_us FROM {name} "
                           f"WHERE {predicate}").collect()[0]
    return None if row["latest_us"] is None else int(row["latest_us"])


def _latest_window_where(settings: Settings, spec: ModelSpec, tables: Tables, gran: str) -> str | None:
    """On a Spark port: the predicate selecting only the latest INPUT window of ``gran`` (the window
    :func:`latest_window_metrics` reads), so one window's metric rows reach the driver; ``None`` elsewhere."""
    name = settings.metrics_table(spec.profile_metrics_table)
    if not isinstance(tables, SparkTables) or not tables.exists(name):
        return None
    where = granularity_sql(gran)
    latest = _latest_start_us(tables, name, f"{where} AND `log_type` = '{INPUT}' AND `slice_key` IS NULL "
                                            f"AND `column_name` = '{TABLE_COLUMN}'")
    return where if latest is None else f"{where} AND `window`.`start` = timestamp_micros({latest})"


def recent_drift_where(settings: Settings, spec: ModelSpec, tables: Tables, gran: str, days: int) -> str | None:
    """On a Spark port: the predicate selecting the drift rows of ``gran`` whose window starts less than ``days``
    before the latest unsliced BASELINE drift window of the spec's features (what the drift summary reads);
    ``None`` elsewhere."""
    name = settings.metrics_table(spec.drift_metrics_table)
    if not isinstance(tables, SparkTables) or not tables.exists(name):
        return None
    where = granularity_sql(gran)
    features = ", ".join("'" + f.replace("'", "''") + "'" for f in spec.feature_names)
    latest = _latest_start_us(tables, name, f"{where} AND `drift_type` = '{BASELINE}' AND `slice_key` IS NULL "
                                            f"AND `{MODEL_ID_COLUMN}` = '{ALL_MODELS}' AND `column_name` IN ({features})")
    if latest is None:
        return where
    return f"{where} AND `window`.`start` > timestamp_micros({latest - days * 86_400_000_000})"


def quality_values(row) -> dict[str, float]:
    """Quality metrics of one ``:table`` profile row, flat: Databricks names, their short aliases, and
    ``precision.macro`` / ``precision.weighted`` etc.; the plain ``precision`` / ``recall`` / ``f1_score`` (and
    ``f1``) are the macro averages. Absent metrics are left out (never read as healthy)."""
    out: dict[str, float] = {}
    for name in (*REGRESSION_METRICS, "accuracy_score"):
        value = _num(row.get(name))
        if value is not None:
            out[name] = value
    # the MAE column as Databricks' schema table may spell it (unsettled: see databricks_metric_tables.json)
    if "mean_absolute_error" not in out and _num(row.get("mean_average_error")) is not None:
        out["mean_absolute_error"] = _num(row.get("mean_average_error"))
    for name in CLASSIFICATION_AVERAGED:
        for avg in ("macro", "weighted"):
            value = _num(struct_field(row.get(name), avg))
            if value is not None:
                out[f"{name}.{avg}"] = value
                if avg == "macro":
                    out[name] = value
    return with_aliases(out)


def drift_values(row) -> dict[str, float]:
    """Drift metrics of one drift-table row, flat (``ks_test.statistic`` etc. plus aliases like ``psi``)."""
    out: dict[str, float] = {}
    for name in DRIFT_METRICS:
        if "." in name:
            struct, part = name.split(".")
            value = _num(struct_field(row.get(struct), part))
        else:
            value = _num(row.get(name))
        if value is not None:
            out[name] = value
    return with_aliases(out)


@dataclass
class WindowMetrics:
    """The latest window's metrics, as evaluation reads them (identical on both runtimes)."""

    model: str
    granularity: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    row_count: int
    labelled_count: int
    quality: dict[str, dict[str, float]] = field(default_factory=dict)  # model version or '*' -> metric -> value
    counts: dict[str, int] = field(default_factory=dict)  # model version or '*' -> rows
    drift: dict[str, dict[str, float]] = field(default_factory=dict)  # feature -> metric -> value (BASELINE, '*')
    distinct_counts: dict[str, int] = field(default_factory=dict)  # feature -> distinct values in the window ('*')

    def metric(self, name: str, version: str = ALL_MODELS) -> float | None:
        """A quality metric by Databricks or short name (``rmse``); None when absent."""
        return self.quality.get(version, {}).get(name)

    def missing_metrics(self, spec: ModelSpec, version: str = ALL_MODELS) -> list[str]:
        """Threshold metrics of ``spec`` that this window does not have."""
        return [m for m in spec.thresholds if self.metric(m, version) is None]

    def drift_breaches(self, spec: ModelSpec) -> dict[str, dict[str, float]]:
        """Features whose BASELINE drift breaches ``spec.drift_thresholds``: feature -> metric -> value."""
        out: dict[str, dict[str, float]] = {}
        for feature in spec.feature_names:
            values = self.drift.get(feature, {})
            for metric, threshold in spec.drift_thresholds.items():
                value = values.get(metric)
                if value is not None and threshold.breached(value):
                    out.setdefault(feature, {})[metric] = value
        return out


def latest_window_metrics(settings: Settings, spec: ModelSpec, granularity: str = DEFAULT_GRANULARITY,
                          tables: Tables | None = None) -> WindowMetrics:
    """Quality, counts and baseline drift of the latest INPUT window at ``granularity`` (unsliced rows)."""
    gran = parse_granularity(granularity).text
    tables = tables or get_tables(settings)
    profile, drift = read_metric_tables(settings, spec, tables, columns=EVALUATED_COLUMNS,
                                        spark_where=_latest_window_where(settings, spec, tables, gran))
    rows = profile[(profile["granularity"] == gran) & (profile["log_type"] == INPUT)
                   & profile["slice_key"].isna() & (profile["column_name"] == TABLE_COLUMN)]
    if rows.empty:
        raise MetricsNotFoundError(f"no {gran} windows in the monitor metrics of {spec.name}; refresh the monitor "
                                   f"with --granularity '{gran}'")
    start = rows["window_start"].max()
    latest = rows[rows["window_start"] == start]
    result = WindowMetrics(spec.name, gran, start, latest["window_end"].iloc[0], 0, 0)
    for _, row in latest.iterrows():
        version = str(row[MODEL_ID_COLUMN])
        result.counts[version] = int(row["count"])
        result.quality[version] = quality_values(row)
    result.row_count = result.counts.get(ALL_MODELS, sum(result.counts.values()))
    label_rows = profile[(profile["granularity"] == gran) & (profile["log_type"] == INPUT)
                         & profile["slice_key"].isna() & (profile["window_start"] == start)
                         & (profile["column_name"] == spec.label.name) & (profile[MODEL_ID_COLUMN] == ALL_MODELS)]
    if not label_rows.empty:
        result.labelled_count = int(label_rows["count"].iloc[0])
    columns = profile[(profile["granularity"] == gran) & (profile["log_type"] == INPUT) & profile["slice_key"].isna()
                      & (profile["window_start"] == start) & (profile[MODEL_ID_COLUMN] == ALL_MODELS)
                      & profile["column_name"].isin(spec.feature_names)]
    for _, row in columns.iterrows():
        distinct = _num(row.get("distinct_count"))
        if distinct is not None:
            result.distinct_counts[str(row["column_name"])] = int(distinct)
    d = drift[(drift["granularity"] == gran) & (drift["drift_type"] == BASELINE) & drift["slice_key"].isna()
              & (drift["window_start"] == start) & (drift[MODEL_ID_COLUMN] == ALL_MODELS)]
    for _, row in d.iterrows():
        if row["column_name"] != TABLE_COLUMN:
            result.drift[str(row["column_name"])] = drift_values(row)
    return result
