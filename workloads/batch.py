"""Batch inference: score a feature frame with the champion into ``<model>_predictions`` with lineage.

Data enters from the feature frame (default: the holdout split, which has labels) or any table with the
spec's feature columns; it leaves appended to ``<catalog>.<schema>.<model>_predictions`` with
``model_name, model_version, run_id, scored_at, score_batch_id``. The scored data is logged as an MLflow
input (context ``inference``) and, when labels are present, ``batch_rmse``/``batch_mae``/``batch_r2``
(classification: ``batch_accuracy``/``batch_f1``) are logged: what autolog never sees.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from workloads import registry
from workloads.data.features import label_frame, load_feature_frame, split_holdout
from workloads.errors import DataValidationError
from workloads.ports.tables import get_tables
from workloads.ports.tracking import configure_tracking, ensure_experiment
from workloads.settings import Settings
from workloads.specs import ModelSpec
from workloads.training.evaluation import quality_metrics

LINEAGE_COLUMNS = ("model_name", "model_version", "run_id", "scored_at", "score_batch_id")


@dataclass
class BatchResult:
    table: str
    rows: int
    model_version: int
    score_batch_id: str
    run_id: str
    metrics: dict[str, float]


def _batch_metrics(spec: ModelSpec, labels: pd.Series, predictions) -> dict[str, float]:
    metrics = quality_metrics(spec, labels, predictions)
    if spec.problem_type == "classification":
        return {"batch_accuracy": metrics["accuracy_score"], "batch_f1": metrics["f1_score"]}
    return {"batch_rmse": metrics["rmse"], "batch_mae": metrics["mae"], "batch_r2": metrics["r2"]}


def score_batch(settings: Settings, spec: ModelSpec, source_table: str | None = None,
                frame: pd.DataFrame | None = None) -> BatchResult:
    """Score with the champion and append the predictions with lineage columns.

    Args:
        settings: Runtime settings.
        spec: The model spec.
        source_table: Three-level name of a table with the spec's feature columns (labels optional).
        frame: A frame to score instead (default: the holdout split of the bakehouse feature frame).
    """
    import mlflow

    configure_tracking(settings)
    tables = get_tables(settings)
    champion = registry.require_alias(settings, spec, registry.CHAMPION)
    if frame is None:
        if source_table:
            frame = tables.read(source_table)
        else:
            frame = label_frame(split_holdout(load_feature_frame(settings))[1], spec)
            source_table = settings.source_table("sales_transactions")
    missing = [c for c in spec.feature_names if c not in frame.columns]
    if missing:
        raise DataValidationError(f"cannot score {source_table or 'frame'}: missing feature columns {missing}", missing)
    model = registry.load_model(settings, spec, version=champion.version)
    predictions = model.predict(frame[spec.feature_names])
    batch_id = uuid.uuid4().hex
    scored = frame.copy()
    scored[spec.prediction.name] = list(predictions)
    scored["model_name"] = champion.name
    scored["model_version"] = str(champion.version)
    scored["run_id"] = champion.run_id or ""
    scored["scored_at"] = pd.Timestamp(datetime.now(UTC))
    scored["score_batch_id"] = batch_id

    ensure_experiment(settings, spec.name)
    metrics: dict[str, float] = {}
    with mlflow.start_run(run_name=f"{spec.name}-batch-{batch_id[:8]}") as run:
        mlflow.set_tags({"mlops.kind": "batch_inference", "model_version": str(champion.version),
                         "score_batch_id": batch_id, "environment": settings.env})
        from mlflow.data.delta_dataset_source import DeltaDatasetSource

        if source_table:
            version = tables.version(source_table) if tables.exists(source_table) else None
            ds_source = DeltaDatasetSource(delta_table_name=source_table, delta_table_version=version)
        else:
            ds_source = "in-memory frame"
        feature_cols = [c for c in [*spec.feature_names, spec.label.name] if c in frame.columns]
        mlflow.log_input(mlflow.data.from_pandas(frame[feature_cols], source=ds_source, name=f"{spec.name}_batch"),
                         context="inference")
        mlflow.log_params({"rows": len(frame), "source_table": source_table or "frame"})
        if spec.label.name in frame.columns and frame[spec.label.name].notna().all():
            metrics = _batch_metrics(spec, frame[spec.label.name], predictions)
            mlflow.log_metrics(metrics)
    out_table = settings.table(spec.predictions_table)
    tables.write(out_table, scored, mode="append")
    return BatchResult(out_table, len(scored), champion.version, batch_id, run.info.run_id, metrics)
