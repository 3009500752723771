"""Evaluate a window's metrics against a spec's thresholds, each with its direction.

``rmse`` is breached above its max, ``r2`` below its min, drift metrics above their max. A verdict is only
drawn from evidence:

- quality metrics count on at least the spec's ``min_rows`` labelled rows, and a quality metric beyond its
  threshold is a breach only when its confidence interval (computed by the observation from the window's
  labelled rows: Clopper-Pearson for accuracy, a BCa bootstrap for the others, see
  :mod:`workloads.watcher.quality_evidence`) lies wholly beyond the threshold. The interval's confidence is
  ``1 - 2 * quality_evidence.alpha / m`` for ``m`` quality thresholds (Bonferroni over one-sided checks: a
  window whose population meets every threshold is called breached with probability at most ``alpha``).
  A point estimate beyond its threshold whose interval reaches the threshold is ``not significant``; one
  without an interval (or with an interval at a lower confidence than needed) is ``missing``;
- a drift distance over its threshold is a breach only when the window has ``drift_evidence.min_rows`` rows,
  a categorical feature has at least ``drift_evidence.min_expected_per_category`` rows per category seen (else
  that feature alone is not judged, and the reasons say so), and
  the feature's two-sample test (KS for numeric, chi-squared for categorical, both already in the drift metric
  table) rejects "same distribution as the baseline" at ``alpha`` divided by the number of features tested
  (Bonferroni: the family-wise false-alarm rate of a healthy window stays within ``alpha``). A distance over
  its threshold without that significance is reported as ``not significant``, not as a breach.

The window's health is ``breach`` (any breach), else ``unknown`` (a metric is missing: never read as
healthy), else ``not enough data`` (the window has too few labelled rows for quality or too few rows for
drift), else ``healthy``. Only a breach (or
a manual trigger, or new training data) asks for a retrain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from workloads.metric_names import canonical, metric_value
from workloads.specs import ModelSpec, Threshold
from workloads.watcher.quality_evidence import family_confidence

OK, BREACH, MISSING, TOO_FEW_ROWS, NOT_SIGNIFICANT = "ok", "breach", "missing", "too_few_rows", "not_significant"
HEALTHY, BREACHED, UNKNOWN, NOT_ENOUGH_DATA = "healthy", "breach", "unknown", "not enough data"


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
    distinct_counts: dict[str, int] = field(default_factory=dict)  # feature -> distinct values in the window
    batch: dict[str, float] = field(default_factory=dict)  # latest batch metrics logged to MLflow
    quality_intervals: dict[str, list[float]] = field(default_factory=dict)  # metric -> [low, high]
    quality_confidence: float | None = None  # two-sided confidence of every quality interval
    quality_interval_rows: int = 0  # labelled rows the intervals were computed from

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
    pvalue: float | None = None  # drift: the feature's test p-value
    alpha: float | None = None  # drift: the level it had to be below (after Bonferroni)
    note: str | None = None  # why there was not enough data, or why a quality breach lacks its evidence
    per_category: bool = False  # only this categorical feature lacked rows per category (the window was judged)
    interval: list[float] | None = None  # quality: the metric's confidence interval [low, high]
    confidence: float | None = None  # quality: that interval's two-sided confidence

    def _interval_text(self) -> str:
        low, high = self.interval  # type: ignore[misc]
        return f"{self.confidence * 100:.4g}% interval {low:.4g} to {high:.4g}"

    def line(self) -> str:
        where = "" if self.scope == "quality" else f"[{self.scope}] "
        op = {"max": ">", "min": "<"}[self.direction]
        if self.status == MISSING and self.note and self.observed is not None:
            return f"{where}{self.metric} {self.observed:.4g} {op} {self.direction} {self.threshold:g} but " \
                   f"{self.note} (not read as healthy)"
        if self.status == MISSING:
            what = "" if self.observed is None else " p-value"
            return f"{where}{self.metric}:{what} missing (not read as healthy)"
        if self.status == TOO_FEW_ROWS:
            rows = "labelled rows" if self.scope == "quality" else "rows in the window"
            return f"{where}{self.metric}: not enough data: {self.note or f'too few {rows} to judge'}"
        if self.status == NOT_SIGNIFICANT and self.interval is not None:
            return (f"{where}{self.metric} {self.observed:.4g} {op} {self.direction} {self.threshold:g} but not "
                    f"significant ({self._interval_text()} reaches the threshold): sampling noise, not a "
                    f"quality drop")
        if self.status == NOT_SIGNIFICANT:
            return (f"{where}{self.metric} {self.observed:.4g} > {self.direction} {self.threshold:g} but not "
                    f"significant (p={self.pvalue:.3g} >= {self.alpha:.2g}): sampling noise, not drift")
        op = op if self.status == BREACH else "within"
        evidence = ""
        if self.status == BREACH and self.pvalue is not None:
            evidence = f" (p={self.pvalue:.3g} < {self.alpha:.2g})"
        elif self.status == BREACH and self.interval is not None:
            evidence = f" ({self._interval_text()})"
        return f"{where}{self.metric} {self.observed:.4g} {op} {self.direction} {self.threshold:g}{evidence}"


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


def _interval(observed: ObservedMetrics, metric: str) -> list[float] | None:
    """The observed interval of ``metric`` under its own or its monitor name."""
    interval = observed.quality_intervals.get(metric, observed.quality_intervals.get(canonical(metric)))
    return None if interval is None else [float(interval[0]), float(interval[1])]


def _quality_check(observed: ObservedMetrics, metric: str, threshold: Threshold, enough_rows: bool,
                   confidence: float) -> Check:
    """One quality threshold, judged on evidence: a point estimate beyond it is a breach only when the metric's
    interval (at ``confidence`` at least) lies wholly beyond it."""
    check = _check(metric, "quality", metric_value(observed.quality, metric), threshold, enough_rows)
    if check.status != BREACH:
        return check
    interval = _interval(observed, metric)
    have = observed.quality_confidence
    if interval is None:
        check.status, check.note = MISSING, "its confidence interval is missing"
    elif have is None or have < confidence - 1e-9:
        check.status = MISSING
        check.note = (f"its interval is at {(have or 0) * 100:.4g}% confidence, {confidence * 100:.4g}% needed "
                      "(more quality thresholds than the observation was made for)")
    else:
        check.interval, check.confidence = interval, have
        nearest = interval[0] if threshold.direction == "max" else interval[1]
        check.status = BREACH if threshold.breached(nearest) else NOT_SIGNIFICANT
    return check


def _pvalue(spec: ModelSpec, feature: str, values: dict) -> float | None:
    """The feature's two-sample test p-value: chi-squared for categorical features, KS for numeric ones."""
    column = next((c for c in spec.features if c.name == feature), None)
    name = "chi_squared_test.pvalue" if column is not None and column.is_categorical else "ks_test.pvalue"
    return values.get(name)


def _drift_check(spec: ModelSpec, observed: ObservedMetrics, metric: str, feature: str, threshold: Threshold,
                 alpha: float) -> Check:
    """One feature's drift metric, judged on evidence (rows, rows per category, significance)."""
    evidence = spec.drift_evidence
    values = observed.drift[feature]
    value = metric_value(values, metric)
    check = Check(metric, feature, value, threshold.direction, threshold.value, OK, alpha=alpha)
    column = next((c for c in spec.features if c.name == feature), None)
    categories = observed.distinct_counts.get(feature)
    if observed.rows < evidence.min_rows:
        check.status = TOO_FEW_ROWS
        check.note = f"{observed.rows} rows in the window, drift needs {evidence.min_rows}"
    elif (column is not None and column.is_categorical and categories
          and observed.rows / categories < evidence.min_expected_per_category):
        check.status, check.per_category = TOO_FEW_ROWS, True
        check.note = (f"{observed.rows} rows over {categories} categories, fewer than "
                      f"{evidence.min_expected_per_category:g} per category; not judged")
    elif value is None:
        check.status = MISSING
    elif threshold.breached(value):
        check.pvalue = _pvalue(spec, feature, values)
        if check.pvalue is None:
            check.status = MISSING
        else:
            check.status = BREACH if check.pvalue < alpha else NOT_SIGNIFICANT
    return check


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
    confidence = family_confidence(spec.quality_evidence.alpha, len(quality_thresholds))
    checks = [_quality_check(observed, m, t, enough, confidence) for m, t in quality_thresholds.items()]
    features = spec.feature_names
    tested = [f for f in features if any(metric_value(observed.drift.get(f, {}), m) is not None
                                         for m in drift_thresholds)]
    alpha = spec.drift_evidence.alpha / max(1, len(tested))  # Bonferroni over the features tested
    for metric, threshold in drift_thresholds.items():
        applicable = [f for f in features if metric_value(observed.drift.get(f, {}), metric) is not None]
        if not applicable:
            checks.append(_check(metric, "all features", None, threshold, observed.rows > 0))
        for feature in applicable:
            checks.append(_drift_check(spec, observed, metric, feature, threshold, alpha))
    breaches = [c for c in checks if c.status == BREACH]
    missing = [c for c in checks if c.status == MISSING]
    too_few = [c for c in checks if c.status == TOO_FEW_ROWS]
    reasons = [c.line() for c in breaches]
    if force:
        reasons.insert(0, "manual trigger (--force)")
    if new_training_data:
        reasons.append("new training data: source table is newer than the champion's training data")
    if observed.rows == 0:
        reasons.append("no rows in the window: nothing to judge")
    reasons += [c.line() for c in missing] + _summarise_too_few(too_few)
    reasons += [c.line() for c in checks if c.status == NOT_SIGNIFICANT]
    if breaches:
        health = BREACHED
    elif missing or observed.rows == 0:
        health = UNKNOWN
    elif any(not c.per_category for c in too_few):
        health = NOT_ENOUGH_DATA  # the window itself is too small: for quality or for drift
    else:
        health = HEALTHY
    return Evaluation(retrain_needed=bool(breaches) or force or new_training_data, health=health, reasons=reasons,
                      checks=checks, window_start=observed.window_start, window_end=observed.window_end)


def _summarise_too_few(checks: list[Check]) -> list[str]:
    """One line per distinct reason (one window-size shortfall covers every drift check)."""
    lines: list[str] = []
    for check in checks:
        if check.scope != "quality" and check.note and "rows in the window, drift needs" in check.note:
            line = f"drift: not enough data: {check.note}"
        else:
            line = check.line()
        if line not in lines:
            lines.append(line)
    return lines


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
