"""Generic trainer: any spec (regression, classification, forecasting), explicit MLflow logging.

A new model needs only a spec: this trainer reads everything it needs from it.
"""

from __future__ import annotations

import mlflow

from workloads.training.context import TrainedModel, TrainingContext
from workloads.training.evaluation import quality_metrics
from workloads.training.logging import log_lineage, log_model
from workloads.training.pipeline import DEFAULT_HYPERPARAMETERS, build_pipeline


def train(ctx: TrainingContext) -> TrainedModel:
    params = {**DEFAULT_HYPERPARAMETERS}
    with mlflow.start_run(run_name=f"{ctx.spec.name}-generic") as run:
        mlflow.set_tags(ctx.tags)
        mlflow.log_params({"problem_type": ctx.spec.problem_type, **params})
        pipeline = build_pipeline(ctx.spec, **params).fit(ctx.X_train, ctx.y_train, **ctx.fit_params)
        metrics = quality_metrics(ctx.spec, ctx.y_holdout, pipeline.predict(ctx.X_holdout))
        mlflow.log_metrics(metrics)
        log_lineage(ctx)
        uri = log_model(ctx, pipeline)
    return TrainedModel(run_id=run.info.run_id, model_uri=uri, metrics=metrics, params=params, model=pipeline)
