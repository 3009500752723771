"""Evaluate a window's metrics against a spec's thresholds, each with its direction.

``rmse`` is breached above its max, ``r2`` below its min, drift metrics above their max. A metric that
is missing, or computed on fewer labelled rows than the spec's ``min_rows``, is reported as such and
makes the window's health ``unknown``: it is never read as healthy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from workloads.metric_names import metric_value
from workloads.specs import ModelSpec, Threshold

OK, BREACH, MISSING, TOO_FEW_ROWS = "ok", "breach", "missing", "too_few_rows"


@dataclass
class ObservedMetrics:
    """What the monitor saw in one window (for all model versions: ``*``)."""

    window_start: str | None = None
    window_end: str | None = None
    granularity: str | None = None
    rows: int = 0
    labelled_rows: int = 0
    quality: dict[str, float | None] = field(default_factory=dict)
    drift: dict[str, dict[str, float | None]] = field(default_factory=dict)  # feature -> metric -> value
    batch: dict[str, float] = field(default_factory=dict)  # latest batch metrics logged to MLflow

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ObservedMetrics:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Check:
    metric: str
    scope: str  # "quality" or the drifted feature's name
    observed: float | None
    direction: str
    threshold: float
    status: str

    def line(self) -> str:
        where = "" if self.scope == "quality" else f"[{self.scope}] "
        if self.status == MISSING:
            return f"{where}{self.metric}: missing (not read as healthy)"
        if self.status == TOO_FEW_ROWS:
            rows = "labelled rows" if self.scope == "quality" else "rows in the window"
            return f"{where}{self.metric}: too few {rows} to judge"
        op = {"max": ">", "min": "<"}[self.direction] if self.status == BREACH else "within"
        return f"{where}{self.metric} {self.observed:.4g} {op} {self.direction} {self.threshold:g}"


@dataclass
class Evaluation:
    retrain_needed: bool
    health: str  # healthy | breach | unknown
    reasons: list[str]
    checks: list[Check]
    window_start: str | None = None
    window_end: str | None = None

    def to_dict(self) -> dict:
        return {"retrain_needed": self.retrain_needed, "health": self.health, "reasons": self.reasons,
                "checks": [asdict(c) for c in self.checks], "window_start": self.window_start,
                "window_end": self.window_end}


def _check(metric: str, scope: str, value: float | None, threshold: Threshold, enough_rows: bool = True) -> Check:
    if not enough_rows:
        status = TOO_FEW_ROWS
    elif value is None:
        status = MISSING
    else:
        status = BREACH if threshold.breached(value) else OK
    return Check(metric, scope, value, threshold.direction, threshold.value, status)


def evaluate_window(spec: ModelSpec, observed: ObservedMetrics, overrides: dict[str, Threshold] | None = None,
                    force: bool = False, new_training_data: bool = False) -> Evaluation:
    """Compare one window's metrics with the spec's thresholds (after stack overrides).

    Args:
        spec: The model spec (quality and drift thresholds, ``min_rows``).
        observed: The window's quality and drift metrics.
        overrides: Per-environment thresholds replacing the spec's, by metric name.
        force: A manual trigger: retrain whatever the metrics say.
        new_training_data: The source data is newer than the champion's training data.
    """
    overrides = overrides or {}
    quality_thresholds = {**spec.thresholds, **{k: v for k, v in overrides.items() if k not in spec.drift_thresholds}}
    drift_thresholds = {**spec.drift_thresholds, **{k: v for k, v in overrides.items() if k in spec.drift_thresholds}}
    enough = observed.labelled_rows >= spec.min_rows
    checks = [_check(m, "quality", metric_value(observed.quality, m), t, enough) for m, t in quality_thresholds.items()]
    features = spec.feature_names
    for metric, threshold in drift_thresholds.items():
        applicable = [f for f in features if metric in observed.drift.get(f, {})]
        if not applicable:
            checks.append(_check(metric, "all features", None, threshold, observed.rows > 0))
        for feature in applicable:
            checks.append(_check(metric, feature, metric_value(observed.drift[feature], metric), threshold))
    breaches = [c for c in checks if c.status == BREACH]
    unknown = [c for c in checks if c.status in (MISSING, TOO_FEW_ROWS)]
    reasons = [c.line() for c in breaches]
    if force:
        reasons.insert(0, "manual trigger (--force)")
    if new_training_data:
        reasons.append("new training data: source table is newer than the champion's training data")
    if observed.rows == 0:
        reasons.append("no rows in the window: nothing to judge")
    reasons += [c.line() for c in unknown]
    health = "breach" if breaches else ("unknown" if unknown or observed.rows == 0 else "healthy")
    return Evaluation(retrain_needed=bool(breaches) or force or new_training_data, health=health, reasons=reasons,
                      checks=checks, window_start=observed.window_start, window_end=observed.window_end)


def parse_overrides(items: list[str] | None) -> dict[str, Threshold]:
    """``["rmse=max:4.5", "r2=min:0.6"]`` -> thresholds (the form the watcher job passes)."""
    from workloads.errors import MlopsError

    out: dict[str, Threshold] = {}
    for item in items or []:
        try:
            metric, rest = item.split("=", 1)
            direction, value = rest.split(":", 1)
            if direction not in ("max", "min"):
                raise ValueError
            out[metric.strip()] = Threshold(**{direction: float(value)})
        except ValueError:
            raise MlopsError(f"threshold override {item!r} should look like METRIC=max:VALUE or METRIC=min:VALUE")
    return out
