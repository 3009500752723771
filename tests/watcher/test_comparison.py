"""The paired champion/challenger comparison against scipy's paired t-test, and its losses per metric."""

import numpy as np
import pytest
from scipy import stats

from workloads.watcher.comparison import loss_name, paired_comparison


def _preds(n, seed, champion_noise=3.0, challenger_noise=3.0):
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 4, n)
    return y, y + rng.normal(0, champion_noise, n), y + rng.normal(0, challenger_noise, n)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [12, 80, 600])
def test_the_interval_agrees_with_scipys_paired_t_test(n, seed):
    y, champion, challenger = _preds(n, seed, champion_noise=3.0, challenger_noise=2.6)
    result = paired_comparison("rmse", "regression", y, champion, challenger, confidence=0.95)
    gain = (y - champion) ** 2 - (y - challenger) ** 2
    test = stats.ttest_rel((y - champion) ** 2, (y - challenger) ** 2)
    assert result.mean_gain == pytest.approx(gain.mean())
    assert result.rows == n and result.loss == "squared error"
    # The interval excludes 0 exactly when the two-sided paired t-test rejects at 5% (on the winning side).
    assert result.challenger_wins == (test.pvalue < 0.05 and gain.mean() > 0)
    half = (result.high - result.low) / 2
    assert half == pytest.approx(stats.t.ppf(0.975, n - 1) * gain.std(ddof=1) / np.sqrt(n))


def test_a_small_lucky_win_is_not_a_win_and_a_clear_one_is():
    y, champion, challenger = _preds(40, 7, champion_noise=3.0, challenger_noise=2.9)  # same model, in effect
    small = paired_comparison("rmse", "regression", y, champion, challenger)
    assert not small.challenger_wins
    assert "95% CI" in small.describe() and "n=40" in small.describe()
    y, champion, challenger = _preds(300, 7, champion_noise=6.0, challenger_noise=2.0)  # concept drift fixed
    clear = paired_comparison("rmse", "regression", y, champion, challenger)
    assert clear.challenger_wins and clear.low > 0


def test_each_metric_is_judged_by_its_own_loss():
    assert loss_name("rmse", "regression") == loss_name("r2", "regression") == "squared error"
    assert loss_name("mae", "regression") == "absolute error"
    assert loss_name("mape", "forecasting") == "absolute percentage error"
    assert loss_name("f1_score", "classification") == "misclassification"
    y = np.array([1, 0, 1, 1, 0, 1, 0, 0] * 30)
    champion = np.where(np.arange(y.size) % 3 == 0, 1 - y, y)  # wrong on a third of the rows
    result = paired_comparison("accuracy", "classification", y, champion, y)  # challenger always right
    assert result.challenger_wins and result.mean_gain == pytest.approx(np.mean(champion != y))


def test_degenerate_holdouts_never_win_by_accident():
    one = paired_comparison("rmse", "regression", [1.0], [3.0], [1.0])
    assert one.rows == 1 and not one.challenger_wins
    same = paired_comparison("rmse", "regression", [1.0, 2.0, 3.0], [1.5, 2.5, 3.5], [1.5, 2.5, 3.5])
    assert same.mean_gain == 0 and not same.challenger_wins
