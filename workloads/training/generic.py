"""Generic trainer: any spec (regression, classification, forecasting), explicit MLflow logging.

A new model needs only a spec: this trainer reads everything it needs from it, its ``hyperparameters`` included.
A grid with more than one candidate is searched without touching the holdout: each candidate fits on 80% of the
training rows and is scored on the other 20% (a cut by the hash of each row's content, so it is the same cut every
time); the best, by the spec's first threshold metric, is refit on all training rows and only then scored on the
holdout. The chosen values are logged as the run's params.
"""

from __future__ import annotations

import mlflow
import numpy as np

from workloads.data.roles import content_keys
from workloads.metric_names import metric_value
from workloads.training.context import TrainedModel, TrainingContext
from workloads.training.evaluation import quality_metrics
from workloads.training.logging import log_lineage, log_model
from workloads.training.pipeline import build_pipeline, hyperparameter_grid

HONOURS_HYPERPARAMETERS = True  # the spec's grid is searched (mlops spec check refuses it for trainers without this)

VALIDATION_PERCENT = 20


def choose(ctx: TrainingContext, options: list[dict]) -> tuple[dict, dict[str, float]]:
    """The candidate scoring best on the validation cut of the training rows, and each candidate's score."""
    if len(options) == 1:
        return options[0], {}
    metric, threshold = next(iter(ctx.spec.thresholds.items()))
    validation = (content_keys(ctx.train, ctx.spec) % np.uint64(100)) < VALIDATION_PERCENT
    fit_rows = ~validation
    weight = None if ctx.sample_weight is None else np.asarray(ctx.sample_weight)[fit_rows]
    scores = {}
    for i, params in enumerate(options):
        pipeline = build_pipeline(ctx.spec, **params).fit(
            ctx.X_train[fit_rows], ctx.y_train[fit_rows], **({} if weight is None else {"model__sample_weight": weight}))
        score = metric_value(quality_metrics(ctx.spec, ctx.y_train[validation],
                                             pipeline.predict(ctx.X_train[validation])), metric)
        scores[f"candidate_{i}_validation_{metric}"] = float(score)
    values = list(scores.values())
    best = int(np.argmin(values) if threshold.direction == "max" else np.argmax(values))
    return options[best], scores


def train(ctx: TrainingContext) -> TrainedModel:
    params, scores = choose(ctx, hyperparameter_grid(ctx.spec))
    with mlflow.start_run(run_name=f"{ctx.spec.name}-generic") as run:
        mlflow.set_tags(ctx.tags)
        mlflow.log_params({"problem_type": ctx.spec.problem_type, **params,
                           **({"grid_candidates": len(scores)} if scores else {})})
        if scores:
            mlflow.log_metrics(scores)
        pipeline = build_pipeline(ctx.spec, **params).fit(ctx.X_train, ctx.y_train, **ctx.fit_params)
        metrics = quality_metrics(ctx.spec, ctx.y_holdout, pipeline.predict(ctx.X_holdout))
        mlflow.log_metrics(metrics)
        log_lineage(ctx)
        uri = log_model(ctx, pipeline)
    return TrainedModel(run_id=run.info.run_id, model_uri=uri, metrics=metrics, params=params, model=pipeline)
