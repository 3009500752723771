"""Read what the monitor computed for the latest window, identically on both runtimes.

Reads the monitor's ``<processed>_profile_metrics`` and ``<processed>_drift_metrics`` tables (Databricks
column names) through the tables port, plus the processed table for the labelled-row count, plus the
latest batch-inference metrics logged to MLflow.
"""

from __future__ import annotations

import pandas as pd

from workloads.ports.tables import get_tables
from workloads.settings import Settings
from workloads.specs import TIMESTAMP_COLUMN, ModelSpec
from workloads.watcher.evaluation import ObservedMetrics

ALL_MODELS = "*"
DRIFT_METRICS = ("js_distance", "population_stability_index", "tv_distance", "l_infinity_distance",
                 "wasserstein_distance", "ks_test", "chi_squared_test")
QUALITY_METRICS = ("mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
                   "mean_absolute_percentage_error", "accuracy_score", "precision", "recall", "f1_score")


def _window_bounds(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``_start``/``_end`` from a ``window`` struct (dict per row) or flat ``window_start``/``window_end``."""
    frame = frame.copy()
    if "window" in frame.columns:
        frame["_start"] = pd.to_datetime(frame["window"].map(lambda w: w["start"]), utc=True)
        frame["_end"] = pd.to_datetime(frame["window"].map(lambda w: w["end"]), utc=True)
    else:
        frame["_start"] = pd.to_datetime(frame["window_start"], utc=True)
        frame["_end"] = pd.to_datetime(frame["window_end"], utc=True)
    return frame


def _unsliced(frame: pd.DataFrame, granularity: str, model_column: str) -> pd.DataFrame:
    keep = frame["granularity"] == granularity
    if model_column in frame.columns:
        keep &= frame[model_column].astype(str) == ALL_MODELS
    if "slice_key" in frame.columns:
        keep &= frame["slice_key"].isna()
    return frame[keep]


def _scalar(value):
    if isinstance(value, dict):  # ks_test / chi_squared_test {statistic, pvalue}: the statistic is the distance
        value = value.get("statistic")
    return None if value is None or pd.isna(value) else float(value)


def latest_batch_metrics(settings: Settings, spec: ModelSpec) -> dict[str, float]:
    """Metrics of the latest batch-inference run logged to MLflow (empty when none)."""
    import mlflow

    from workloads.ports.tracking import configure_tracking, experiment_location

    configure_tracking(settings)
    experiment = mlflow.get_experiment_by_name(experiment_location(settings, spec.name))
    if experiment is None:
        return {}
    runs = mlflow.search_runs([experiment.experiment_id], "tags.`mlops.kind` = 'batch_inference'",
                              order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
    if not runs:
        return {}
    return {k: float(v) for k, v in runs[0].data.metrics.items() if k.startswith("batch_")}


def observe_latest_window(settings: Settings, spec: ModelSpec, granularity: str = "1 day",
                          model_column: str = "model_version") -> ObservedMetrics:
    """The latest INPUT window's quality metrics, labelled-row count and BASELINE drift per feature."""
    tables = get_tables(settings)
    profile_name = settings.table(spec.profile_metrics_table)
    drift_name = settings.table(spec.drift_metrics_table)
    observed = ObservedMetrics(granularity=granularity)
    if not tables.exists(profile_name):
        return observed
    profile = _unsliced(_window_bounds(tables.read(profile_name)), granularity, model_column)
    profile = profile[profile["log_type"] == "INPUT"]
    if profile.empty:
        return observed
    start = profile["_start"].max()
    window = profile[profile["_start"] == start]
    end = window["_end"].iloc[0]
    observed.window_start, observed.window_end = start.isoformat(), end.isoformat()
    table_row = window[window["column_name"] == ":table"]
    if not table_row.empty:
        row = table_row.iloc[0]
        observed.rows = int(row["count"]) if "count" in row and not pd.isna(row["count"]) else 0
        observed.quality = {m: _scalar(row[m]) for m in QUALITY_METRICS if m in row.index and _scalar(row[m]) is not None}
    processed = settings.table(spec.processed_table)
    if tables.exists(processed):
        frame = tables.read(processed, columns=[TIMESTAMP_COLUMN, spec.label.name])
        in_window = (frame[TIMESTAMP_COLUMN] >= start) & (frame[TIMESTAMP_COLUMN] < end)
        observed.labelled_rows = int(frame.loc[in_window, spec.label.name].notna().sum())
        observed.rows = observed.rows or int(in_window.sum())
    if tables.exists(drift_name):
        drift = _unsliced(_window_bounds(tables.read(drift_name)), granularity, model_column)
        drift = drift[(drift["drift_type"] == "BASELINE") & (drift["_start"] == start)]
        for row in drift.itertuples(index=False):
            column = row.column_name
            if column not in spec.feature_names:
                continue
            values = {m: _scalar(getattr(row, m)) for m in DRIFT_METRICS if hasattr(row, m)}
            observed.drift[column] = {k: v for k, v in values.items() if v is not None}
    return observed
