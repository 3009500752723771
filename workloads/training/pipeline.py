"""The estimator pipeline for a spec: one-hot categoricals, pass numerics, gradient-boosted trees."""

from __future__ import annotations

import itertools

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from workloads.specs import ModelSpec

DEFAULT_HYPERPARAMETERS = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31}


def hyperparameter_grid(spec: ModelSpec) -> list[dict]:
    """Every combination of the spec's ``hyperparameters`` over the defaults (the defaults alone when it sets none)."""
    grid = spec.hyperparameters or {}
    keys = sorted(grid)
    return [{**DEFAULT_HYPERPARAMETERS, **dict(zip(keys, combo))} for combo in itertools.product(*(grid[k] for k in keys))]


def estimator_parameters(spec: ModelSpec) -> set[str]:
    """The hyperparameter names the spec's estimator takes (what ``hyperparameters`` in a spec may set)."""
    estimator = HistGradientBoostingClassifier if spec.problem_type == "classification" else HistGradientBoostingRegressor
    return set(estimator().get_params()) - {"random_state"}


def build_pipeline(spec: ModelSpec, **hyperparameters) -> Pipeline:
    """A fresh, unfitted pipeline for the spec's problem type."""
    params = {**DEFAULT_HYPERPARAMETERS, **hyperparameters}
    categorical = [c.name for c in spec.features if c.is_categorical]
    numeric = [c.name for c in spec.features if not c.is_categorical]
    columns = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
            ("numeric", "passthrough", numeric),
        ],
        verbose_feature_names_out=False,
    )
    if spec.problem_type == "classification":
        estimator = HistGradientBoostingClassifier(random_state=0, **params)
    else:  # regression and forecasting (regression on calendar features)
        estimator = HistGradientBoostingRegressor(random_state=0, **params)
    return Pipeline([("columns", columns), ("model", estimator)])
