"""Synthetic processed-inference and baseline frames shaped by any model spec (for tests, benchmarks, demos)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workloads.specs import (
    EXAMPLE_ID_COLUMN,
    MODEL_ID_COLUMN,
    REQUEST_ID_COLUMN,
    TIMESTAMP_COLUMN,
    ModelSpec,
    parse_spec,
)

START = pd.Timestamp("2026-01-01", tz="UTC")


def benchmark_spec(numeric: int = 8, categorical: int = 3) -> ModelSpec:
    """A regression spec with ``numeric`` double and ``categorical`` string features."""
    features = [{"name": f"x{i}", "type": "double"} for i in range(numeric)]
    features += [{"name": f"c{i}", "type": "string"} for i in range(categorical)]
    return parse_spec({
        "name": "synthetic", "problem_type": "regression", "features": features,
        "source": {"table": "synthetic.data.examples", "id": "example_key", "timestamp": "observed_at"},
        "label": {"name": "target", "type": "double"}, "prediction": {"name": "prediction", "type": "double"},
        "thresholds": {"rmse": {"max": 2.0}, "r2": {"min": 0.5}},
        "drift_thresholds": {"population_stability_index": {"max": 0.25}, "js_distance": {"max": 0.2}},
    }, "benchmark")


def _features(spec: ModelSpec, n: int, rng: np.random.Generator, shift: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for i, col in enumerate(spec.features):
        if col.is_categorical:
            pool = np.array([f"{col.name}_{k}" for k in range(6)], dtype=object)
            weights = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
            # Drift moves probability mass towards the rare categories.
            p = np.where(shift[:, None] > 0, weights[::-1], weights) if shift.any() else None
            if p is None:
                out[col.name] = pool[rng.choice(6, size=n, p=weights)]
            else:
                u = rng.random(n)[:, None]
                out[col.name] = pool[(u > np.cumsum(p, axis=1)).sum(axis=1).clip(0, 5)]
        elif col.type in ("int", "bigint"):
            out[col.name] = (rng.poisson(5 + i % 7, size=n) + np.round(shift * 3)).astype(np.int64)
        else:
            out[col.name] = rng.normal(i % 5, 1 + (i % 3), size=n) + shift * (1 + i % 3)
    return out


def _target(spec: ModelSpec, feats: dict[str, np.ndarray], n: int, rng: np.random.Generator):
    numeric = [c.name for c in spec.features if not c.is_categorical]
    signal = sum((feats[name].astype(np.float64) * (0.5 / (k + 1)) for k, name in enumerate(numeric)),
                 start=np.zeros(n))
    if spec.problem_type == "classification":
        label = (signal + rng.normal(0, 0.5, n) > np.median(signal)).astype(np.int64)
        flip = rng.random(n) < 0.15
        return label, np.where(flip, 1 - label, label)
    label = signal + rng.normal(0, 1.0, n)
    if spec.label.type in ("int", "bigint"):
        label = np.round(label).astype(np.int64)
    return label, signal + rng.normal(0, 0.3, n)


def make_frames(spec: ModelSpec, rows: int = 2000, days: int = 5, versions=("1", "2"), baseline_rows: int = 1000,
                seed: int = 0, start: pd.Timestamp = START, drift_from_day: int | None = None,
                label_fraction: float = 1.0, ids: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A processed inference frame (``spec.processed_columns()``) and a baseline frame for ``spec``.

    Rows are spread uniformly over ``days`` days from ``start`` and across ``versions``; from
    ``drift_from_day`` on, numeric features shift and categorical ones move towards rare values.
    """
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, days * 86_400_000_000, size=rows))  # microseconds
    ts = start + pd.to_timedelta(offsets, unit="us")
    shift = np.zeros(rows)
    if drift_from_day is not None:
        shift = (offsets >= drift_from_day * 86_400_000_000).astype(np.float64)
    feats = _features(spec, rows, rng, shift)
    label, pred = _target(spec, feats, rows, rng)
    frame = pd.DataFrame(feats)
    frame[spec.prediction.name] = pred
    if label_fraction < 1.0:
        label = pd.array(label, dtype="Float64" if label.dtype.kind == "f" else "Int64")
        label[rng.random(rows) >= label_fraction] = pd.NA
    frame[spec.label.name] = label
    frame[MODEL_ID_COLUMN] = np.asarray(versions, dtype=object)[rng.integers(0, len(versions), size=rows)]
    frame[TIMESTAMP_COLUMN] = ts
    if ids:
        frame[REQUEST_ID_COLUMN] = [f"req-{seed}-{i}" for i in range(rows)]
        frame[EXAMPLE_ID_COLUMN] = [f"ex-{seed}-{i}" for i in range(rows)]
    base_feats = _features(spec, baseline_rows, rng, np.zeros(baseline_rows))
    base_label, base_pred = _target(spec, base_feats, baseline_rows, rng)
    baseline = pd.DataFrame(base_feats)
    baseline[spec.prediction.name] = base_pred
    baseline[spec.label.name] = base_label
    baseline[MODEL_ID_COLUMN] = versions[0]
    return frame, baseline
