"""Batch inference: score a feature frame with the champion into ``<model>_predictions`` with lineage.

Data enters from the feature frame (default: the holdout split, which has labels) or any table with the
spec's feature columns; it leaves appended to ``<catalog>.<schema>.<model>_predictions`` with
``model_name, model_version, run_id, scored_at, score_batch_id``. The scored data is logged as an MLflow
input (context ``inference``) and, when labels are present, ``batch_rmse``/``batch_mae``/``batch_r2``
(classification: ``batch_accuracy``/``batch_f1``) are logged: what autolog never sees.

Where it runs: a pandas frame (the default holdout, or ``frame``) and every source table on the local backend are
scored in this process. A source table on Databricks (a Spark tables port) never leaves Spark: it is read at one
Delta version, scored by ``mlflow.pyfunc.spark_udf`` on the executors, the lineage columns are Spark literals, the
batch is appended with ``saveAsTable``, and the batch metrics are one Spark SQL aggregate over the appended rows: the
driver receives the table's version row and that aggregate row (and the MLflow input records the table name and
version, not the data).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from workloads import registry
from workloads.errors import DataValidationError
from workloads.ports.tables import RowFilter, SparkTables, Tables, get_tables
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


def batch_metrics_sql(spec: ModelSpec, relation: str, labelled: bool) -> str:
    """One Spark SQL aggregate over a scored batch: ``scored_rows``, ``labelled_rows`` and, when ``labelled``, the
    batch metrics :func:`_batch_metrics` computes in pandas (same definitions: sklearn's RMSE, MAE and R² with its
    constant-label convention; accuracy and macro F1 over the classes seen in labels or predictions, zero for a class
    without any true or predicted positive). The metric columns are meaningful only when every row is labelled; no
    division fails on an empty batch under ANSI mode (Databricks SQL's default).

    Args:
        spec: the model spec (problem type, label and prediction columns).
        relation: the table or view holding the batch (label and prediction columns).
        labelled: whether the batch has the label column at all.
    """
    y, p = f"`{spec.label.name}`", f"`{spec.prediction.name}`"
    if not labelled:
        return f"SELECT count(*) AS scored_rows, 0L AS labelled_rows FROM {relation}"
    if spec.problem_type == "classification":
        return f"""WITH pairs AS (
  SELECT {y} AS y, {p} AS p, count(*) AS n FROM {relation} WHERE {y} IS NOT NULL GROUP BY {y}, {p}),
classes AS (SELECT y AS k FROM pairs UNION SELECT p AS k FROM pairs),
per_class AS (
  SELECT c.k,
    sum(CASE WHEN pairs.y = c.k AND pairs.p = c.k THEN pairs.n ELSE 0 END) AS tp,
    sum(CASE WHEN pairs.y <=> c.k THEN pairs.n ELSE 0 END) AS actual,
    sum(CASE WHEN pairs.p <=> c.k THEN pairs.n ELSE 0 END) AS predicted
  FROM classes c CROSS JOIN pairs GROUP BY c.k)
SELECT
  (SELECT count(*) FROM {relation}) AS scored_rows,
  (SELECT count({y}) FROM {relation}) AS labelled_rows,
  (SELECT CAST(sum(CASE WHEN y <=> p THEN n ELSE 0 END) AS DOUBLE) / sum(n) FROM pairs) AS batch_accuracy,
  (SELECT avg(CASE WHEN actual + predicted = 0 THEN 0D ELSE 2D * tp / (actual + predicted) END) FROM per_class)
    AS batch_f1"""
    error = f"(CAST({y} AS DOUBLE) - CAST({p} AS DOUBLE))"
    return f"""SELECT scored_rows, labelled_rows,
  sqrt(squared_error / nullif(labelled_rows, 0)) AS batch_rmse,
  absolute_error / nullif(labelled_rows, 0) AS batch_mae,
  CASE WHEN total_variance > 0 THEN 1D - squared_error / total_variance
       WHEN squared_error = 0 THEN 1D ELSE 0D END AS batch_r2
FROM (SELECT count(*) AS scored_rows, count({y}) AS labelled_rows,
        sum(pow({error}, 2)) AS squared_error, sum(abs({error})) AS absolute_error,
        var_pop(CAST({y} AS DOUBLE)) * count({y}) AS total_variance
      FROM {relation})"""


def score_batch(settings: Settings, spec: ModelSpec, source_table: str | None = None,
                frame: pd.DataFrame | None = None, tables: Tables | None = None) -> BatchResult:
    """Score with the champion and append the predictions with lineage columns.

    Args:
        settings: Runtime settings.
        spec: The model spec.
        source_table: Three-level name of a table with the spec's feature columns (labels optional). On
            Databricks it is scored in Spark (see the module docstring); nothing of it is collected.
        frame: A frame to score instead (default: the holdout share of the spec's source table, which the
            model never trained on).
        tables: The tables port (default: the configured backend's).
    """
    configure_tracking(settings)
    tables = tables or get_tables(settings)
    champion = registry.require_alias(settings, spec, registry.CHAMPION)
    if frame is None and source_table and isinstance(tables, SparkTables):
        return _score_table_in_spark(settings, spec, tables, source_table, champion)
    return _score_frame(settings, spec, tables, champion, source_table, frame)


def _score_frame(settings: Settings, spec: ModelSpec, tables: Tables, champion, source_table: str | None,
                 frame: pd.DataFrame | None) -> BatchResult:
    """Score a pandas frame (or a source table read whole into this process: the local backend)."""
    import mlflow

    if frame is None:
        if source_table:
            frame = tables.read(source_table)
        else:
            from workloads.data import roles
            from workloads.data.source import read_examples
            from workloads.data.source import source_table as spec_source

            frame = roles.split(read_examples(settings, spec, tables), spec).holdout
            source_table = spec_source(settings, spec)
    _require_features(spec, list(frame.columns), source_table)
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
        _tag_run(settings, champion, batch_id)
        if source_table:
            version = tables.version(source_table) if tables.exists(source_table) else None
            ds_source = _delta_source(source_table, version)
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


def _score_table_in_spark(settings: Settings, spec: ModelSpec, tables: SparkTables, source_table: str,
                          champion) -> BatchResult:
    """Score a table without collecting it: read at one version, ``spark_udf``, ``saveAsTable``, one aggregate row."""
    import mlflow
    from mlflow.data.spark_dataset import SparkDataset
    from pyspark.sql import functions as F

    version = tables.version(source_table)
    source = tables.frame(source_table, version=version)  # the version the MLflow input names
    _require_features(spec, source.columns, source_table)
    labelled = spec.label.name in source.columns
    # The champion as a pandas UDF run on the executors; env_manager="local": the job's environment already holds
    # the model's dependencies (the same wheel trained it). result_type: the spec's prediction column type. On
    # serverless the UDF runs in Databricks' UDF sandbox (1 GB of memory and disk together, per MLflow's notes).
    # https://mlflow.org/docs/latest/python_api/mlflow.pyfunc.html#mlflow.pyfunc.spark_udf
    predict = mlflow.pyfunc.spark_udf(tables.spark, registry.model_uri(settings, spec, version=champion.version),
                                      result_type=spec.prediction.type, env_manager="local")
    batch_id = uuid.uuid4().hex
    scored_at = datetime.now(UTC)  # one literal, so the appended batch is found again by its time (files pruned)
    scored = source.withColumn(spec.prediction.name, predict(F.struct(*[F.col(c) for c in spec.feature_names])))
    scored = scored.withColumns({
        "model_name": F.lit(champion.name), "model_version": F.lit(str(champion.version)),
        "run_id": F.lit(champion.run_id or ""), "scored_at": F.lit(scored_at), "score_batch_id": F.lit(batch_id)})
    out_table = settings.table(spec.predictions_table)

    ensure_experiment(settings, spec.name)
    metrics: dict[str, float] = {}
    with mlflow.start_run(run_name=f"{spec.name}-batch-{batch_id[:8]}") as run:
        _tag_run(settings, champion, batch_id)
        # The input names the Delta table and version it was read at; the dataset wraps the lazy DataFrame (its
        # digest is the plan's semantic hash), nothing is materialised. What mlflow.data.from_spark builds for a
        # Delta table name and version, without its DESCRIBE DETAIL probe (Unity Catalog managed tables are Delta).
        # https://mlflow.org/docs/latest/api_reference/python_api/mlflow.data.html (from_spark, load_delta, SparkDataset;
        # source: https://mlflow.org/docs/latest/api_reference/_modules/mlflow/data/spark_dataset.html)
        feature_cols = [*spec.feature_names, *([spec.label.name] if labelled else [])]
        mlflow.log_input(SparkDataset(df=source.select(*feature_cols), source=_delta_source(source_table, version),
                                      targets=spec.label.name if labelled else None, name=f"{spec.name}_batch"),
                         context="inference")
        _aligned_to(tables, out_table, scored).write.mode("append").option("mergeSchema", "true") \
            .saveAsTable(out_table)
        # The batch just appended, scored once: found by its scored_at literal (Delta skips every older file by its
        # statistics) and batch id; aggregated in Spark, one row to the driver.
        batch = tables.frame(out_table, where=RowFilter(
            "scored_at", ((scored_at, scored_at + timedelta(microseconds=1)),))).where(F.col("score_batch_id") == batch_id)
        view = f"_mlops_batch_{batch_id}"
        batch.createOrReplaceTempView(view)
        row = tables.spark.sql(batch_metrics_sql(spec, view, labelled)).collect()[0].asDict()
        rows = int(row["scored_rows"])
        mlflow.log_params({"rows": rows, "source_table": source_table})
        if labelled and rows and int(row["labelled_rows"]) == rows:
            metrics = {k: float(v) for k, v in row.items() if k.startswith("batch_")}
            mlflow.log_metrics(metrics)
    return BatchResult(out_table, rows, champion.version, batch_id, run.info.run_id, metrics)


def _aligned_to(tables: SparkTables, name: str, scored):
    """``scored`` with the existing table's columns first, in its order (a column ``scored`` lacks, e.g. the label of
    an unlabelled batch, as a typed null), then its new columns (``mergeSchema`` adds them): an append that means the
    same whether the table resolves columns by name (Delta) or by position (plain Spark tables)."""
    from pyspark.sql import functions as F

    if not tables.exists(name):
        return scored
    target = tables.frame(name).schema
    present = set(scored.columns)
    return scored.select(*[F.col(f.name) if f.name in present else F.lit(None).cast(f.dataType).alias(f.name)
                           for f in target.fields],
                         *[F.col(c) for c in scored.columns if c not in set(target.fieldNames())])


def _require_features(spec: ModelSpec, columns: list[str], source: str | None) -> None:
    missing = [c for c in spec.feature_names if c not in columns]
    if missing:
        raise DataValidationError(f"cannot score {source or 'frame'}: missing feature columns {missing}", missing)


def _tag_run(settings: Settings, champion, batch_id: str) -> None:
    import mlflow

    mlflow.set_tags({"mlops.kind": "batch_inference", "model_version": str(champion.version),
                     "score_batch_id": batch_id, "environment": settings.env})


def _delta_source(table: str, version: int | None):
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    return DeltaDatasetSource(delta_table_name=table, delta_table_version=version)
