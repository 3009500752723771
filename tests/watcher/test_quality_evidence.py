"""Quality intervals: the accuracy interval against scipy and its exact coverage, the bootstrap's metrics against
sklearn on the resampled rows, its coverage on simulated windows, and the observation's bounded read of the
window's labelled rows (locally and in Spark)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from tests.serving.test_labels_merge import DAY0, processed_rows
from workloads.ports.tables import LocalTables, SparkTables
from workloads.specs import load_spec
from workloads.training.evaluation import quality_metrics
from workloads.watcher import observation
from workloads.watcher import quality_evidence as qe
from workloads.watcher.evaluation import evaluate_window
from workloads.watcher.observation import labelled_window_rows

REGRESSOR = load_spec("bakehouse_autolog")
CLASSIFIER = load_spec("bakehouse_large_order")


# --- accuracy: Clopper-Pearson -----------------------------------------------------------------------------

@pytest.mark.parametrize(("successes", "n", "confidence"), [(17, 20, 0.99), (0, 10, 0.95), (10, 10, 0.95),
                                                            (270, 301, 0.99), (1, 1, 0.9), (4_000, 5_000, 0.995)])
def test_the_accuracy_interval_is_clopper_pearson(successes, n, confidence):
    low, high = qe.proportion_interval(successes, n, confidence)
    reference = stats.binomtest(successes, n).proportion_ci(confidence, method="exact")
    assert low == pytest.approx(reference.low, abs=1e-9) and high == pytest.approx(reference.high, abs=1e-9)
    # by definition: at each end, seeing this many successes (or more extreme) has probability (1 - confidence) / 2
    tail = (1 - confidence) / 2
    if successes < n:
        assert stats.binom.cdf(successes, n, high) == pytest.approx(tail, rel=1e-6)
    if successes > 0:
        assert stats.binom.sf(successes - 1, n, low) == pytest.approx(tail, rel=1e-6)


@pytest.mark.parametrize("n", [20, 50, 200])
def test_the_accuracy_interval_misses_the_truth_at_most_its_tail_level_for_every_true_accuracy(n):
    """The exact miss rate of the upper end (a false breach of a ``min`` threshold at the truth), over a grid of
    true accuracies; Wilson's, for contrast, goes well over the level near 1 (why it is not used)."""
    confidence, tail = 0.99, 0.005
    ks = np.arange(n + 1)
    ours = np.array([qe.proportion_interval(int(k), n, confidence)[1] for k in ks])
    wilson = np.array([stats.binomtest(int(k), n).proportion_ci(confidence, method="wilson").high for k in ks])
    worst_ours = worst_wilson = 0.0
    for p in np.linspace(0.5, 0.999, 400):
        pmf = stats.binom.pmf(ks, n, p)
        worst_ours = max(worst_ours, pmf[ours < p].sum())
        worst_wilson = max(worst_wilson, pmf[wilson < p].sum())
    assert worst_ours <= tail + 1e-12
    assert worst_wilson > 3 * tail


def test_family_confidence_is_bonferroni_over_one_sided_checks():
    assert qe.family_confidence(0.01, 2) == pytest.approx(0.99)
    assert qe.family_confidence(0.01, 1) == pytest.approx(0.98)
    assert qe.family_confidence(0.05, 0) == pytest.approx(0.90)  # no thresholds: one check's worth


# --- the bootstrap: weights, metrics, coverage ---------------------------------------------------------------

def test_resample_weights_are_multinomial_counts_and_chunking_does_not_change_them(monkeypatch):
    n = 37
    weights = qe.resample_sums(np.eye(n), 500, seed=3)
    assert weights.shape == (500, n) and np.all(weights >= 0) and np.all(weights == np.round(weights))
    assert np.all(weights.sum(axis=1) == n)
    assert abs(weights.mean() - 1.0) < 0.05  # each row drawn once per resample on average
    monkeypatch.setattr(qe, "CHUNK_ELEMENTS", n * 7)  # 7 resamples per chunk: 72 chunks
    assert np.array_equal(qe.resample_sums(np.eye(n), 500, seed=3), weights)


def _expanded(weights: np.ndarray, *columns: np.ndarray) -> list[np.ndarray]:
    """Each row repeated as many times as its weight: the resample the weights stand for."""
    counts = weights.astype(int)
    return [np.repeat(c, counts) for c in columns]


@pytest.mark.parametrize("problem_type", ["regression", "classification"])
def test_resampled_metrics_are_sklearn_s_on_the_resampled_rows(problem_type, monkeypatch):
    rng = np.random.default_rng(7)
    n = 25
    if problem_type == "regression":
        y = rng.gamma(2.0, 3.0, n) + 0.5
        pred = y + rng.normal(0, 2, n)
        spec = REGRESSOR
    else:
        y = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])
        pred = np.where(rng.random(n) < 0.7, y, rng.choice(["a", "b", "c"], n))
        spec = CLASSIFIER
    weights = np.stack([rng.multinomial(n, np.full(n, 1 / n)) for _ in range(30)]).astype(float)
    if problem_type == "classification":  # one resample holding a single class: the others vanish
        only = np.flatnonzero(y == y[0])
        weights[0] = 0
        weights[0, only[0]] = n
    seen = {}
    monkeypatch.setattr(qe, "resample_sums", lambda per_row, resamples, seed: seen.setdefault("w", weights)
                        @ per_row)
    monkeypatch.setattr(qe, "bca_interval", lambda estimate, replicates, jackknife, tail: replicates.tolist())
    intervals = qe.quality_intervals(problem_type, y, pred, 0.9)
    for b in range(weights.shape[0]):
        yb, pb = _expanded(weights[b], y, pred)
        expected = quality_metrics(spec, yb, pb)
        if problem_type == "classification":
            expected = {**expected, "precision.weighted": expected["precision_weighted"],
                        "recall.weighted": expected["recall_weighted"],
                        "f1_score.weighted": expected["f1_score_weighted"]}
        for name, values in intervals.items():
            if name == "accuracy_score":
                continue
            assert values[b] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), (b, name)


def _regression_population(rng, n):
    """A label of mild skew with a biased, heavier-tailed error (t with 8 degrees of freedom)."""
    y = rng.gamma(9.0, 1.0, n) + 1.0
    return y, y + 0.3 + 1.5 * rng.standard_t(8, n)


def _classification_population(rng, n):
    y = (rng.random(n) < 0.25).astype("int64")
    flip = rng.random(n) < np.where(y == 1, 0.3, 0.08)
    return y, np.where(flip, 1 - y, y)


LOSSES = {"root_mean_squared_error", "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error"}


@pytest.mark.parametrize("problem_type", ["regression", "classification"])
@pytest.mark.parametrize("n", [40, 300])
def test_intervals_cover_the_population_metric_on_simulated_windows(problem_type, n):
    """Windows drawn from a known population: the end that decides a breach of the metric's usual threshold
    (the lower end of a loss under ``max``, the upper end of a score under ``min``) misses the population's metric
    at most about its 5% (binomial noise over 300 windows: 3 standard errors); both ends together about 10%,
    except for regression on few rows, where heavy-tailed errors (a t with 8 degrees of freedom) make the far
    ends fall short (RMSE's upper end misses about 12% on 40 rows, r2 about 15% both ends together): ends no
    threshold of the usual direction looks at."""
    spec = REGRESSOR if problem_type == "regression" else CLASSIFIER
    draw = _regression_population if problem_type == "regression" else _classification_population
    rng = np.random.default_rng(11)
    truth = quality_metrics(spec, *draw(rng, 400_000))
    names = (["root_mean_squared_error", "mean_absolute_error", "r2_score", "mean_squared_error",
              "mean_absolute_percentage_error"]
             if problem_type == "regression" else ["accuracy_score", "f1_score", "precision", "recall"])
    windows, confidence = 300, 0.9
    below, above = dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for w in range(windows):
        intervals = qe.quality_intervals(problem_type, *draw(rng, n), confidence, seed=w)
        for name in names:
            low, high = intervals[name]
            below[name] += high < truth[name]
            above[name] += low > truth[name]
    one_end = 0.05 + 3 * np.sqrt(0.05 * 0.95 / windows)
    both_ends = 0.1 + 3 * np.sqrt(0.1 * 0.9 / windows)
    for name in names:
        false_breach = above[name] if name in LOSSES else below[name]
        assert false_breach / windows <= one_end, (name, below, above)
        if problem_type == "classification" or n >= 100:
            assert (below[name] + above[name]) / windows <= both_ends, (name, below, above)


def test_intervals_hold_the_point_estimate_and_are_reproducible():
    rng = np.random.default_rng(5)
    y, pred = _classification_population(rng, 301)
    first = qe.quality_intervals("classification", y, pred, 0.99)
    assert first == qe.quality_intervals("classification", y, pred, 0.99)  # seeded
    point = quality_metrics(CLASSIFIER, y, pred)
    for name, (low, high) in first.items():
        key = name.replace(".weighted", "_weighted")
        assert low <= point[key] <= high, name
    assert set(first) == set(qe.CLASSIFICATION)
    wider = qe.quality_intervals("classification", y, pred, 0.999)
    assert all(wider[m][0] <= first[m][0] and wider[m][1] >= first[m][1] for m in ("accuracy_score", "f1_score"))
    y, pred = _regression_population(rng, 200)
    assert set(qe.quality_intervals("regression", y, pred, 0.99)) == set(qe.REGRESSION)


def test_few_rows_give_only_what_can_be_computed():
    assert qe.quality_intervals("classification", np.array([]), np.array([]), 0.99) == {}
    assert set(qe.quality_intervals("classification", np.array([1]), np.array([1.0]), 0.99)) == {"accuracy_score"}
    # 1 and 1.0 are one class (a bigint label against a double prediction), as sklearn compares them
    assert qe.quality_intervals("classification", np.array([1, 0]), np.array([1.0, 0.0]), 0.9)[
        "accuracy_score"][1] == 1.0
    # regression rows need a finite label and prediction
    assert qe.quality_intervals("regression", np.array([1.0, np.nan]), np.array([1.0, 2.0]), 0.99) == {}


def test_the_issue_s_window_is_not_significant_and_a_real_drop_is_a_breach():
    """f1 0.896 against min 0.9 on 301 rows (a model whose f1 is 0.91): not a breach; f1 0.6 is."""
    from workloads.specs import Threshold
    from workloads.watcher.evaluation import ObservedMetrics

    spec = CLASSIFIER.model_copy(update={"thresholds": {"f1_score": Threshold(min=0.9)}})
    rng = np.random.default_rng(1)
    for wrong, expected in ((31, "healthy"), (121, "breach")):
        y = (rng.random(301) < 0.5).astype("int64")
        pred = y.copy()
        pred[rng.choice(301, wrong, replace=False)] ^= 1
        f1 = skm.f1_score(y, pred, average="macro")
        confidence = qe.family_confidence(spec.quality_evidence.alpha, 1)
        observed = ObservedMetrics(rows=301, labelled_rows=301, quality={"f1_score": f1},
                                   drift={f: {"js_distance": 0.0} for f in spec.feature_names},
                                   quality_intervals=qe.quality_intervals("classification", y, pred, confidence),
                                   quality_confidence=confidence, quality_interval_rows=301)
        spec_no_drift = spec.model_copy(update={"drift_thresholds": {}})
        ev = evaluate_window(spec_no_drift, observed)
        assert f1 < 0.9 and ev.health == expected, (f1, ev.reasons)
        status = {c.status for c in ev.checks}
        assert status == ({"not_significant"} if expected == "healthy" else {"breach"})


# --- observation: the bounded read of the window's labelled rows ----------------------------------------------

class ReadRecorder(LocalTables):
    def __init__(self, warehouse):
        super().__init__(warehouse)
        self.reads = []

    def read(self, name, columns=None, version=None, where=None):
        self.reads.append((list(columns) if columns else None, where))
        return super().read(name, columns, version, where)


def _three_days() -> pd.DataFrame:
    """Days 0-2 of 6 requests x 2 rows; on day 1 odd requests have no label yet."""
    days = []
    for day in range(3):
        rows = processed_rows(day, requests=6)
        request = rows["request_id"].str.split("-r").str[1].astype(int)
        rows["quantity"] = pd.array([None if day == 1 and r % 2 else r + 10 * day for r in request], dtype="Int64")
        rows["prediction"] = rows["quantity"].astype("float64").fillna(0) + 0.5
        days.append(rows)
    return pd.concat(days, ignore_index=True)


def test_the_window_s_labelled_rows_are_read_bounded(settings, monkeypatch):
    tables = ReadRecorder(settings.warehouse)
    name = settings.table(REGRESSOR.processed_table)
    frame = _three_days()
    for day in range(3):
        tables.write(name, frame[frame["timestamp"].dt.day == DAY0.day + day])
    start, end = pd.Timestamp(DAY0 + timedelta(days=1)), pd.Timestamp(DAY0 + timedelta(days=2))

    rows = labelled_window_rows(settings, REGRESSOR, start, end, 6, tables)

    expected = frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end) & frame["quantity"].notna()]
    assert list(rows.columns) == ["quantity", "prediction"] and len(rows) == len(expected) == 6
    assert sorted(rows["quantity"].tolist()) == sorted(expected["quantity"].tolist())
    columns, where = tables.reads[-1]
    assert columns == ["quantity", "prediction"]
    assert where.column == "timestamp" and where.ranges == ((start, end),)
    assert set(where.not_null) == {"quantity", "prediction"}
    # at most the cap, a seeded random sample
    monkeypatch.setattr(observation, "QUALITY_EVIDENCE_MAX_ROWS", 4)
    capped = labelled_window_rows(settings, REGRESSOR, start, end, 6, tables)
    assert len(capped) == 4 and capped.equals(labelled_window_rows(settings, REGRESSOR, start, end, 6, tables))
    # no processed table yet: no rows (the intervals are then missing, never read as healthy)
    assert labelled_window_rows(settings, CLASSIFIER, start, end, 6, tables).empty


@pytest.mark.spark
def test_databricks_reads_the_window_s_labelled_rows_in_spark_and_collects_only_the_sample(spark, home, monkeypatch):
    from pyspark.sql.connect.dataframe import DataFrame

    from workloads.settings import load_settings

    settings = load_settings(home=home, catalog="spark_catalog", schema="sch_quality")
    spark.sql("CREATE DATABASE IF NOT EXISTS sch_quality")
    name = settings.table(REGRESSOR.processed_table)
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    tables = SparkTables(spark)
    frame = _three_days()
    tables.write(name, frame)
    start, end = pd.Timestamp(DAY0 + timedelta(days=1)), pd.Timestamp(DAY0 + timedelta(days=2))
    brought = []
    real_to_pandas = DataFrame.toPandas
    monkeypatch.setattr(DataFrame, "toPandas", lambda self: brought.append(
        (self.columns, len(out := real_to_pandas(self)))) or out)

    rows = labelled_window_rows(settings, REGRESSOR, start, end, 6, tables)
    assert sorted(rows["quantity"].tolist()) == [10, 10, 12, 12, 14, 14]
    monkeypatch.setattr(observation, "QUALITY_EVIDENCE_MAX_ROWS", 4)
    capped = labelled_window_rows(settings, REGRESSOR, start, end, 6, tables)

    assert len(capped) == 4 and set(capped["quantity"]) <= {10, 12, 14}
    assert brought == [(["quantity", "prediction"], 6), (["quantity", "prediction"], 4)]
