"""Model-quality metrics with the names thresholds and the monitor use.

Regression: ``rmse``/``root_mean_squared_error``, ``mae``/``mean_absolute_error``, ``r2``/``r2_score``,
``mse``/``mean_squared_error``, ``mape``/``mean_absolute_percentage_error``.
Classification: ``accuracy_score``, ``precision``, ``recall``, ``f1_score`` (macro averages, as the monitor's
plain names read) and ``*_weighted``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from workloads.metric_names import metric_value, with_aliases
from workloads.specs import ModelSpec


def quality_metrics(spec: ModelSpec, y_true, y_pred) -> dict[str, float]:
    """Every quality metric of the spec's problem type, under short and monitor names."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if spec.problem_type == "classification":
        out = {
            "accuracy_score": skm.accuracy_score(y_true, y_pred),
            "precision": skm.precision_score(y_true, y_pred, average="macro", zero_division=0),
            "recall": skm.recall_score(y_true, y_pred, average="macro", zero_division=0),
            "f1_score": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
            "precision_weighted": skm.precision_score(y_true, y_pred, average="weighted", zero_division=0),
            "recall_weighted": skm.recall_score(y_true, y_pred, average="weighted", zero_division=0),
            "f1_score_weighted": skm.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        }
    else:
        mse = skm.mean_squared_error(y_true, y_pred)
        out = {
            "mean_squared_error": mse,
            "root_mean_squared_error": float(np.sqrt(mse)),
            "mean_absolute_error": skm.mean_absolute_error(y_true, y_pred),
            "r2_score": skm.r2_score(y_true, y_pred),
            "mean_absolute_percentage_error": skm.mean_absolute_percentage_error(y_true, y_pred),
        }
    return with_aliases({k: float(v) for k, v in out.items()})


def evaluate(spec: ModelSpec, model, frame: pd.DataFrame) -> dict[str, float]:
    """Score ``frame`` with a fitted model (sklearn or pyfunc) and compute its quality metrics."""
    predictions = model.predict(frame[spec.feature_names])
    return quality_metrics(spec, frame[spec.label.name], predictions)


def threshold_failures(spec: ModelSpec, metrics: dict[str, float], overrides: dict | None = None) -> list[str]:
    """One line per threshold the metrics breach or cannot be checked against (missing is not healthy)."""
    thresholds = {**spec.thresholds, **(overrides or {})}
    failures = []
    for name, threshold in thresholds.items():
        value = metric_value(metrics, name)
        if value is None:
            failures.append(f"{name}: missing (cannot be read as healthy)")
        elif threshold.breached(value):
            op = ">" if threshold.direction == "max" else "<"
            failures.append(f"{name}: {value:.4g} {op} {threshold.direction} {threshold.value:g}")
    return failures
