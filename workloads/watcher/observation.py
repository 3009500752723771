"""Read what the monitor computed for the latest window, identically on both runtimes.

The monitor's ``<processed>_profile_metrics`` and ``<processed>_drift_metrics`` tables (Databricks column
names) are read through the monitor's read API, the same on both runtimes; the latest batch-inference
metrics come from MLflow. The metric tables hold point estimates only, so the quality metrics' confidence
intervals (:mod:`workloads.watcher.quality_evidence`) are computed here from the window's labelled rows of the
processed table: only its label and prediction columns, only that window's rows, at most
:data:`QUALITY_EVIDENCE_MAX_ROWS` of them (on Databricks sampled in Spark before anything reaches the driver).
"""

from __future__ import annotations

import pandas as pd

from workloads.errors import TableNotFoundError
from workloads.ports.tables import RowFilter, SparkTables, Tables, get_tables
from workloads.settings import Settings
from workloads.specs import TIMESTAMP_COLUMN, ModelSpec
from workloads.watcher.evaluation import ObservedMetrics
from workloads.watcher.quality_evidence import SEED, family_confidence, quality_intervals

QUALITY_EVIDENCE_MAX_ROWS = 50_000  # labelled rows the intervals are computed from, at most (a random sample)


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


def labelled_window_rows(settings: Settings, spec: ModelSpec, start, end, labelled_rows: int,
                         tables: Tables) -> pd.DataFrame:
    """The label and prediction of the processed table's rows in ``[start, end)`` that have both.

    A bounded read: the timestamp range and the non-null columns are pushed down (file statistics locally, a
    ``WHERE`` in Spark), only the two columns are read, and at most :data:`QUALITY_EVIDENCE_MAX_ROWS` rows are
    kept (a seeded random sample; on Databricks ``sample`` then ``limit`` run in Spark, with the fraction from
    the monitor's ``labelled_rows``, so only the sample is collected).
    """
    label, prediction = spec.label.name, spec.prediction.name
    name = settings.table(spec.processed_table)
    if not tables.exists(name):
        return pd.DataFrame(columns=[label, prediction])
    where = RowFilter(TIMESTAMP_COLUMN, ((start, end),), not_null=(label, prediction))
    cap = QUALITY_EVIDENCE_MAX_ROWS
    if isinstance(tables, SparkTables):
        rows = tables.frame(name, [label, prediction], where=where)
        if labelled_rows > cap:
            rows = rows.sample(fraction=min(1.0, 1.1 * cap / labelled_rows), seed=SEED)
        return rows.limit(cap).toPandas()
    frame = tables.read(name, [label, prediction], where=where)
    return frame.sample(cap, random_state=SEED) if len(frame) > cap else frame


def observe_latest_window(settings: Settings, spec: ModelSpec, granularity: str = "1 day",
                          tables: Tables | None = None) -> ObservedMetrics:
    """The latest INPUT window's quality (all versions, ``*``) with each metric's confidence interval, row and
    labelled counts, BASELINE drift per feature.

    The intervals are at the confidence the spec's quality thresholds need together
    (:func:`~workloads.watcher.quality_evidence.family_confidence` of ``quality_evidence.alpha``). An
    unrefreshed monitor gives an empty observation, which evaluation reports as "nothing to judge".
    """
    from workloads.monitoring.metrics import ALL_MODELS, MetricsNotFoundError, latest_window_metrics

    tables = tables or get_tables(settings)
    try:
        window = latest_window_metrics(settings, spec, granularity, tables=tables)
    except (MetricsNotFoundError, TableNotFoundError):
        return ObservedMetrics(granularity=granularity)
    confidence = family_confidence(spec.quality_evidence.alpha, len(spec.thresholds))
    intervals, interval_rows = {}, 0
    if window.labelled_count > 0:
        rows = labelled_window_rows(settings, spec, window.window_start, window.window_end,
                                    int(window.labelled_count), tables)
        interval_rows = len(rows)
        intervals = quality_intervals(spec.problem_type, rows[spec.label.name].to_numpy(),
                                      rows[spec.prediction.name].to_numpy(), confidence)
    return ObservedMetrics(
        window_start=pd.Timestamp(window.window_start).isoformat(),
        window_end=pd.Timestamp(window.window_end).isoformat(),
        granularity=granularity,
        rows=int(window.row_count),
        labelled_rows=int(window.labelled_count),
        quality=dict(window.quality.get(ALL_MODELS, {})),
        drift={feature: dict(values) for feature, values in window.drift.items() if feature in spec.feature_names},
        distinct_counts=dict(window.distinct_counts),
        quality_intervals=intervals,
        quality_confidence=confidence,
        quality_interval_rows=interval_rows,
    )
