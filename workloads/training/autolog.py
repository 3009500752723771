"""Trainer variant ``autolog``: ``mlflow.autolog()`` captures params, training metrics, model and datasets.

What autolog does not capture: how the model does on data scored later. Batch scoring
(:mod:`workloads.batch`) logs ``batch_rmse``/``batch_mae``/``batch_r2`` for that. The holdout metrics
the promotion gate reads are logged explicitly, so every variant is gated on the same names.
"""

from __future__ import annotations

import mlflow

from workloads.training.context import TrainedModel, TrainingContext
from workloads.training.evaluation import quality_metrics
from workloads.training.logging import log_lineage
from workloads.training.pipeline import DEFAULT_HYPERPARAMETERS, build_pipeline


def train(ctx: TrainingContext) -> TrainedModel:
    mlflow.autolog(log_input_examples=True, log_model_signatures=True, log_models=True, log_datasets=True,
                   silent=True, exclude_flavors=["pyspark", "pyspark.ml"])
    try:
        with mlflow.start_run(run_name=f"{ctx.spec.name}-autolog") as run:
            mlflow.set_tags(ctx.tags)
            pipeline = build_pipeline(ctx.spec, **DEFAULT_HYPERPARAMETERS)
            pipeline.fit(ctx.X_train, ctx.y_train, **ctx.fit_params)
            logged = mlflow.last_logged_model()
            holdout_predictions = pipeline.predict(ctx.X_holdout)
        metrics = quality_metrics(ctx.spec, ctx.y_holdout, holdout_predictions)
        with mlflow.start_run(run_id=run.info.run_id):
            mlflow.log_metrics({k: metrics[k] for k in ("rmse", "mae", "r2") if k in metrics} or metrics)
            log_lineage(ctx)
    finally:
        mlflow.autolog(disable=True)
    if logged is None:
        raise RuntimeError("mlflow.autolog did not log a model")
    return TrainedModel(run_id=run.info.run_id, model_uri=logged.model_uri, metrics=metrics,
                        params=dict(DEFAULT_HYPERPARAMETERS), model=pipeline)
