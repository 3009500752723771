"""Read what the monitor computed for the latest window, identically on both runtimes.

The monitor's ``<processed>_profile_metrics`` and ``<processed>_drift_metrics`` tables (Databricks column
names) are read through the monitor's read API, the same on both runtimes; the latest batch-inference
metrics come from MLflow.
"""

from __future__ import annotations

import pandas as pd

from workloads.errors import TableNotFoundError
from workloads.settings import Settings
from workloads.specs import ModelSpec
from workloads.watcher.evaluation import ObservedMetrics


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
                          tables=None) -> ObservedMetrics:
    """The latest INPUT window's quality (all versions, ``*``), row and labelled counts, BASELINE drift per feature.

    An unrefreshed monitor gives an empty observation, which evaluation reports as "nothing to judge".
    """
    from workloads.monitoring.metrics import ALL_MODELS, MetricsNotFoundError, latest_window_metrics

    try:
        window = latest_window_metrics(settings, spec, granularity, tables=tables)
    except (MetricsNotFoundError, TableNotFoundError):
        return ObservedMetrics(granularity=granularity)
    return ObservedMetrics(
        window_start=pd.Timestamp(window.window_start).isoformat(),
        window_end=pd.Timestamp(window.window_end).isoformat(),
        granularity=granularity,
        rows=int(window.row_count),
        labelled_rows=int(window.labelled_count),
        quality=dict(window.quality.get(ALL_MODELS, {})),
        drift={feature: dict(values) for feature, values in window.drift.items() if feature in spec.feature_names},
        distinct_counts=dict(window.distinct_counts),
    )
