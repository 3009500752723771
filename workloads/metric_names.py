"""Short metric names used in specs, MLflow runs and thresholds, and the monitor's (Databricks) names for them."""

from __future__ import annotations

import math

ALIASES = {
    "mse": "mean_squared_error", "rmse": "root_mean_squared_error", "mae": "mean_absolute_error",
    "r2": "r2_score", "mape": "mean_absolute_percentage_error", "accuracy": "accuracy_score",
    "f1": "f1_score", "psi": "population_stability_index", "ks": "ks_test.statistic",
    "chi_squared": "chi_squared_test.statistic",
}


def canonical(metric: str) -> str:
    """The monitor's name for a metric (``rmse`` -> ``root_mean_squared_error``)."""
    return ALIASES.get(metric, metric)


def metric_value(values: dict, metric: str) -> float | None:
    """``metric`` from ``values`` under its own or its monitor name; None when absent or NaN."""
    value = values.get(metric, values.get(canonical(metric)))
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def with_aliases(values: dict[str, float]) -> dict[str, float]:
    """``values`` with each short name added beside the monitor name it stands for (in place; returned)."""
    for short, long in ALIASES.items():
        if long in values:
            values[short] = values[long]
    return values
