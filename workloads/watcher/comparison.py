"""Champion vs challenger on the same holdout rows: a paired comparison whose uncertainty is reported.

A challenger that scores a lower rmse than the champion on a few dozen rows has not shown anything: the gap is
often within what resampling the same rows would give. Both models score the *same* rows, so the comparison
is paired: per row, the champion's loss minus the challenger's loss (squared error for rmse/mse/r2, absolute
error for mae, absolute percentage error for mape, misclassification for the classification metrics). Its
mean, with a Student-t confidence interval, is the challenger's gain per row; the challenger wins only when the
whole interval is above zero. This is the paired t-test (scipy.stats.ttest_rel gives the same statistic),
reported as an interval so the audit row and the alert say how sure the verdict is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from workloads.metric_names import canonical

LOSSES = {
    "root_mean_squared_error": "squared error", "mean_squared_error": "squared error", "r2_score": "squared error",
    "mean_absolute_error": "absolute error", "mean_absolute_percentage_error": "absolute percentage error",
}
CLASSIFICATION_LOSS = "misclassification"


@dataclass(frozen=True)
class PairedComparison:
    """The challenger's per-row gain over the champion on one holdout (positive: the challenger is better)."""

    loss: str
    rows: int
    mean_gain: float
    low: float
    high: float
    confidence: float

    @property
    def challenger_wins(self) -> bool:
        return self.low > 0

    def describe(self) -> str:
        pct = f"{self.confidence:.0%}"
        return (f"challenger's {self.loss} per row is lower by {self.mean_gain:.4g} "
                f"({pct} CI {self.low:.4g} to {self.high:.4g}, n={self.rows})")

    def to_dict(self) -> dict:
        return asdict(self)


def loss_name(metric: str, problem_type: str) -> str:
    """The per-row loss a metric is judged by."""
    if problem_type == "classification":
        return CLASSIFICATION_LOSS
    return LOSSES.get(canonical(metric), "squared error")


def row_losses(loss: str, y_true, y_pred) -> np.ndarray:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if loss == CLASSIFICATION_LOSS:
        return (y_true != y_pred).astype(float)
    error = y_true.astype(float) - y_pred.astype(float)
    if loss == "absolute error":
        return np.abs(error)
    if loss == "absolute percentage error":
        return np.abs(error) / np.maximum(np.abs(y_true.astype(float)), np.finfo(float).eps)
    return error**2


def paired_comparison(metric: str, problem_type: str, y_true, champion_pred, challenger_pred,
                      confidence: float = 0.95) -> PairedComparison:
    """Compare two models' predictions of the same rows by the loss behind ``metric``.

    Args:
        metric: The spec's primary metric (decides the per-row loss).
        problem_type: ``regression``, ``classification`` or ``forecasting``.
        y_true: The holdout's labels.
        champion_pred: The champion's predictions of those rows.
        challenger_pred: The challenger's predictions of the same rows.
        confidence: Two-sided confidence of the interval on the mean gain.

    Returns:
        The mean per-row gain of the challenger and its confidence interval.
    """
    loss = loss_name(metric, problem_type)
    gain = row_losses(loss, y_true, champion_pred) - row_losses(loss, y_true, challenger_pred)
    n = int(gain.size)
    mean = float(gain.mean()) if n else 0.0
    if n < 2:
        return PairedComparison(loss, n, mean, float("-inf"), float("inf"), confidence)
    sd = float(gain.std(ddof=1))
    if sd == 0.0:  # identical losses on every row (or a constant gain): the interval is the point
        return PairedComparison(loss, n, mean, mean, mean, confidence)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sd / np.sqrt(n)
    return PairedComparison(loss, n, mean, mean - half, mean + half, confidence)
