"""Confidence intervals on a window's quality metrics, from the window's labelled rows.

The monitor's metric tables hold point estimates only. A window of a few hundred rows gives a noisy estimate
(an f1 of 0.896 on 301 rows is well within the sampling noise of a model whose f1 is 0.91), so the watcher
calls a quality threshold breached only when the metric's interval lies wholly beyond it.

What is guaranteed, and against which reference: the window's labelled rows are treated as a sample from the
population the model serves at that time; the reference is the model's metric on that population (what an
infinitely large window would show). Each interval here is two-sided at ``confidence``, so each end is a
one-sided bound at level ``(1 - confidence) / 2``. The watcher asks for
``confidence = 1 - 2 * alpha / m`` (:func:`family_confidence`, ``m`` = the quality thresholds judged,
``alpha`` = the spec's ``quality_evidence.alpha``): on a window whose population meets every threshold, the
chance that any threshold is called a breach is at most ``alpha`` (Bonferroni), up to each method's
approximation:

- ``accuracy_score`` (a single proportion: correct predictions among ``n`` rows): the Clopper-Pearson interval,
  whose every tail holds its level exactly for any ``n`` and any true accuracy (:func:`proportion_interval`
  says why not the Wilson interval: it undercovers near 1, where good models' accuracy is, on small windows).
- every other metric of the problem type, as ``workloads.training.evaluation.quality_metrics`` names them
  (macro and weighted ``precision``, ``recall``, ``f1_score`` for classification; ``mean_squared_error``,
  ``root_mean_squared_error``, ``mean_absolute_error``, ``r2_score``, ``mean_absolute_percentage_error`` for
  regression and forecasting): a seeded bias-corrected and accelerated (BCa, Efron 1987) bootstrap over rows,
  at a tail level expanded for small samples (Hesterberg, "What Teachers Should Know About the Bootstrap",
  2015: ``Phi(-sqrt(n / (n - 1)) * t_{n-1})`` instead of ``(1 - confidence) / 2``, against the bootstrap's
  narrowness on a few dozen rows); the acceleration comes from the leave-one-out values, computed from the
  same sums. Each resample is a row of multinomial weights (how often each row was drawn, summing to ``n``);
  every metric is a function of weighted sums of a few per-row vectors, so a chunk of resamples is one matrix
  product ``weights @ per_row`` (fast, and memory bounded by :data:`CHUNK_ELEMENTS` whatever the number of
  rows or resamples). At least 2,000 resamples, more when the tail is small (20 beyond each end).

Known limits of the bootstrap, measured in the tests: it is an approximation. The end that decides a breach of
a metric's usual direction (the lower end of a loss under ``max``, the upper end of a score under ``min``)
holds its level on simulated windows from 40 rows; on few rows of heavy-tailed errors the far ends fall short
(RMSE's upper end), and a window whose every row is right gives the one-point interval ``[1, 1]`` for F1 (it
cannot show the variance it did not see; that end never decides a ``min`` breach). The Clopper-Pearson
interval has no such limit.

``tests/watcher/test_quality_evidence.py`` checks the accuracy interval against scipy and its exact coverage,
the bootstrap's metrics against sklearn and its coverage on simulated windows;
``tests/benchmarks/bench_drift_evidence.py`` measures the false-breach rate on healthy windows of the demo
models, also with their thresholds moved onto their own population metrics.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

ACCURACY = "accuracy_score"
REGRESSION = ("mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
              "mean_absolute_percentage_error")
CLASSIFICATION = (ACCURACY, "precision", "recall", "f1_score", "precision.weighted", "recall.weighted",
                  "f1_score.weighted")
SEED = 20_261_205  # fixed: the same rows always give the same interval
CHUNK_ELEMENTS = 1 << 22  # resample weights held at once (x 8 bytes, twice): about 64 MB
MIN_TAIL_RESAMPLES = 20  # resamples beyond each end of the interval, at least
MIN_RESAMPLES, MAX_RESAMPLES = 2_000, 20_000


def family_confidence(alpha: float, thresholds: int) -> float:
    """The two-sided confidence each quality interval needs so that ``thresholds`` one-sided checks together
    call a healthy window breached with probability at most ``alpha`` (Bonferroni: ``alpha / m`` each)."""
    return 1.0 - 2.0 * alpha / max(1, thresholds)


def proportion_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Clopper-Pearson ("exact") interval of a binomial proportion ``successes / n`` (``n >= 1``).

    Each end is the proportion at which seeing ``successes`` (or more extreme) has probability ``(1 -
    confidence) / 2``, so each tail's miss rate is at most that level for every true proportion and every ``n``.
    The Wilson score interval does not hold it near 0 and 1 on small windows: at 99% its upper end falls below
    the truth up to 8.3% of the time on 20 rows, 5.7% on 50 and 2% on 200 (2% with continuity correction),
    against the 0.5% allowed; an accuracy of 0.97 is exactly there.
    """
    from scipy import stats  # imported here: the CLI imports evaluation, which needs none of scipy

    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1 - tail, successes + 1, n - successes))
    return low, high


def expanded_tail(n: int, confidence: float) -> float:
    """The lower tail level of Hesterberg's expanded percentile interval on ``n`` rows (``n >= 2``)."""
    from scipy import stats  # imported here: the CLI imports evaluation, which needs none of scipy

    tail = (1 - confidence) / 2
    return NormalDist().cdf(-math.sqrt(n / (n - 1)) * float(stats.t.ppf(1 - tail, n - 1)))


def resample_count(tail: float) -> int:
    """Resamples enough for :data:`MIN_TAIL_RESAMPLES` beyond each end, within the bounds."""
    return int(min(MAX_RESAMPLES, max(MIN_RESAMPLES, math.ceil(MIN_TAIL_RESAMPLES / max(tail, 1e-9)))))


def resample_sums(per_row: np.ndarray, resamples: int, seed: int = SEED) -> np.ndarray:
    """Weighted column sums of ``per_row`` (``n x k``) under ``resamples`` multinomial bootstrap weightings.

    Returns:
        ``resamples x k``: row ``b`` is ``w_b @ per_row`` where ``w_b`` counts how often each of the ``n`` rows
        was drawn in resample ``b`` (``n`` draws with replacement).
    """
    n = per_row.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_ELEMENTS // n)
    out = np.empty((resamples, per_row.shape[1]))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        out[start:start + size] = weights @ per_row
    return out


def regression_rows(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row vectors whose weighted sums give every regression metric (:func:`regression_metrics`)."""
    err = pred - y
    centred = y - y.mean()  # centred before squaring: no cancellation in the total sum of squares
    ape = np.abs(err) / np.maximum(np.abs(y), np.finfo(np.float64).eps)
    return np.column_stack([err**2, np.abs(err), ape, centred, centred**2])


def regression_metrics(sums: np.ndarray, total: float) -> dict[str, np.ndarray]:
    """The regression metrics (as the monitor computes them) of weightings whose sums of
    :func:`regression_rows` are ``sums`` (one row per weighting) and whose weights add up to ``total``."""
    ss_res = sums[:, 0]
    ss_tot = np.maximum(sums[:, 4] - sums[:, 3] ** 2 / total, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return {"mean_squared_error": ss_res / total, "root_mean_squared_error": np.sqrt(ss_res / total),
            "mean_absolute_error": sums[:, 1] / total, "r2_score": r2,
            "mean_absolute_percentage_error": sums[:, 2] / total}


def classification_rows(codes_true: np.ndarray, codes_pred: np.ndarray, classes: int) -> np.ndarray:
    """Per-row one-hot vectors (truth, prediction, hit) whose weighted sums give every classification metric."""
    truth, predicted = np.eye(classes)[codes_true], np.eye(classes)[codes_pred]
    return np.hstack([truth, predicted, truth * (codes_true == codes_pred)[:, None]])


def classification_metrics(sums: np.ndarray, total: float) -> dict[str, np.ndarray]:
    """Macro and weighted precision, recall and F1 from sums of :func:`classification_rows` (sklearn's rules:
    ``zero_division=0``, macro averages over the labels present in that weighting's truth or predictions)."""
    k = sums.shape[1] // 3
    support, guessed, tp = sums[:, :k], sums[:, k:2 * k], sums[:, 2 * k:]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(guessed > 0, tp / guessed, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denominator = precision + recall
        f1 = np.where(denominator > 0, 2 * precision * recall / denominator, 0.0)
    present = (support + guessed) > 0
    share = support / total
    out = {}
    for name, per_class in (("precision", precision), ("recall", recall), ("f1_score", f1)):
        out[name] = (per_class * present).sum(axis=1) / present.sum(axis=1)
        out[f"{name}.weighted"] = (per_class * share).sum(axis=1)
    return out


def bca_interval(estimate: float, replicates: np.ndarray, jackknife: np.ndarray, tail: float) -> list[float]:
    """Bias-corrected and accelerated bootstrap interval (Efron 1987) with ``tail`` beyond each end.

    The bias correction ``z0`` comes from the share of resamples below the estimate (ties count half), the
    acceleration from the leave-one-out (jackknife) values' skewness; both move the percentiles so that a
    skewed or biased metric (r2, F1 and RMSE on a few dozen rows) keeps its coverage on the side that matters.
    """
    normal = NormalDist()
    if np.ptp(replicates) == 0:
        return [float(replicates[0])] * 2
    below = (np.sum(replicates < estimate) + 0.5 * np.sum(replicates == estimate)) / replicates.shape[0]
    z0 = normal.inv_cdf(min(max(float(below), 1e-6), 1 - 1e-6))
    spread = jackknife.mean() - jackknife
    denominator = 6.0 * float(np.sum(spread**2)) ** 1.5
    acceleration = float(np.sum(spread**3)) / denominator if denominator > 0 else 0.0
    levels = []
    for z in (normal.inv_cdf(tail), normal.inv_cdf(1 - tail)):
        shifted = z0 + (z0 + z) / (1 - acceleration * (z0 + z))
        levels.append(normal.cdf(shifted))
    low, high = np.quantile(replicates, levels)
    return [float(low), float(high)]


def quality_intervals(problem_type: str, y_true, y_pred, confidence: float,
                      seed: int = SEED) -> dict[str, list[float]]:
    """Two-sided ``confidence`` intervals of every quality metric of ``problem_type`` on these rows.

    Args:
        problem_type: ``classification``; anything else is scored as regression (as training scores it).
        y_true: the labels of the window's labelled rows.
        y_pred: the model's predictions for the same rows.
        confidence: two-sided confidence of each interval (e.g. :func:`family_confidence`).
        seed: the bootstrap's seed.

    Returns:
        ``{metric: [low, high]}`` under the monitor's metric names; empty without rows, and the bootstrapped
        metrics only from 2 rows on (regression rows need a finite label and prediction).
    """
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    if problem_type != "classification":
        y, pred = y.astype(np.float64), pred.astype(np.float64)
        finite = np.isfinite(y) & np.isfinite(pred)
        y, pred = y[finite], pred[finite]
    n = y.shape[0]
    out: dict[str, list[float]] = {}
    if n == 0:
        return out
    if problem_type == "classification":
        codes, _ = pd.factorize(np.concatenate([y, pred]))  # 1 and 1.0 are one class, as sklearn compares them
        low, high = proportion_interval(int(np.sum(codes[:n] == codes[n:])), n, confidence)
        out[ACCURACY] = [low, high]
        per_row, metrics = classification_rows(codes[:n], codes[n:], int(codes.max()) + 1), classification_metrics
    else:
        per_row, metrics = regression_rows(y, pred), regression_metrics
    if n < 2:
        return out
    tail = expanded_tail(n, confidence)
    full = per_row.sum(axis=0)
    estimates = metrics(full[None, :], float(n))
    replicates = metrics(resample_sums(per_row, resample_count(tail), seed), float(n))
    jackknife = metrics(full[None, :] - per_row, float(n - 1))
    for name, values in replicates.items():
        out[name] = bca_interval(float(estimates[name][0]), values, jackknife[name], tail)
    return out
