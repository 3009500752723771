"""The monitor's statistics agree with scipy on the same data; edge cases are defined."""

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from workloads.monitoring import stats

RNG = np.random.default_rng(7)


def _pairs():
    out = []
    for i in range(40):
        n1, n2 = int(RNG.integers(1, 3000)), int(RNG.integers(1, 12000))
        a = RNG.normal(0, RNG.uniform(0.5, 20), n1)
        b = RNG.normal(RNG.uniform(-1, 1), 5, n2)
        if i % 3 == 0:  # heavy ties
            a, b = np.round(a), np.round(b)
        out.append((a, b))
    out.append((np.array([1.0]), np.array([2.0, 3.0])))
    out.append((np.arange(50.0), np.arange(50.0) + 0.5))
    return out


PAIRS = _pairs()


@pytest.mark.parametrize("kernel,indexed", [(True, False), (True, True), (False, False)],
                         ids=["compiled", "compiled-indexed", "numpy"])
@pytest.mark.parametrize("a,b", PAIRS)
def test_numeric_drift_matches_scipy(a, b, kernel, indexed):
    comparison = stats.Sorted.of(b, shared=indexed)
    got = stats.numeric_drift(stats.Sorted.of(a), comparison, exact_pvalues=True, kernel=kernel, indexed=indexed)
    ref = sps.ks_2samp(a, b)
    assert got.ks_statistic == pytest.approx(ref.statistic, abs=1e-9)
    assert got.ks_pvalue == pytest.approx(ref.pvalue, abs=1e-9)
    assert got.wasserstein_distance == pytest.approx(sps.wasserstein_distance(a, b), rel=1e-9, abs=1e-9)


def test_fast_ks_pvalue_within_0_005_of_scipy():
    worst = 0.0
    for a, b in PAIRS:
        got = stats.numeric_drift(stats.Sorted.of(a), stats.Sorted.of(b))
        worst = max(worst, abs(got.ks_pvalue - sps.ks_2samp(a, b).pvalue))
    assert worst < 0.005
    print(f"largest fast KS p-value difference: {worst:.2e}")


@pytest.mark.parametrize("n1,n2", [(2000, 2000), (2500, 2500), (4000, 4000), (1500, 3000), (3000, 6000),
                                   (2001, 2500)])
def test_fast_ks_pvalue_within_0_005_on_coarse_lattices(n1, n2):
    """Equal or commensurate sizes put D on a coarse lattice, the hardest case for the asymptotic formula:
    every lattice value of D across the bulk of the distribution, fast against scipy's exact p-value."""
    import math

    en = n1 * n2 / (n1 + n2)
    step = math.gcd(n1, n2) / (n1 * n2)
    ds = np.arange(int(0.3 / math.sqrt(en) / step), int(2.0 / math.sqrt(en) / step) + 1) * step
    ds = ds[:: max(1, len(ds) // 60)]
    sizes = (np.full(len(ds), n1), np.full(len(ds), n2))
    fast, exact = stats.ks_pvalues(ds, *sizes), stats.ks_pvalues(ds, *sizes, exact=True)
    assert np.all(np.isfinite(exact)) and exact.max() > 0.5 > exact.min()
    assert np.abs(fast - exact).max() < 0.005


def test_fast_ks_pvalue_identical_to_scipy_for_large_samples():
    a, b = RNG.normal(size=12000), RNG.normal(0.02, 1, size=15000)
    got = stats.numeric_drift(stats.Sorted.of(a), stats.Sorted.of(b))
    assert got.ks_pvalue == pytest.approx(sps.ks_2samp(a, b).pvalue, abs=1e-12)


def test_psi_follows_documented_binning():
    a, b = RNG.normal(0.3, 1, 5000), RNG.normal(0, 1, 7000)
    edges = np.sort(b)[(np.arange(1, 10) * len(b)) // 10]
    pa = np.bincount(np.searchsorted(edges, a, "right"), minlength=10) / len(a)
    pb = np.bincount(np.searchsorted(edges, b, "right"), minlength=10) / len(b)
    pa, pb = np.where(pa == 0, 1e-4, pa), np.where(pb == 0, 1e-4, pb)
    expected = np.sum((pa - pb) * np.log(pa / pb))
    got = stats.numeric_drift(stats.Sorted.of(a), stats.Sorted.of(b)).population_stability_index
    assert got == pytest.approx(expected, abs=1e-12)
    assert got > 0.05  # a 0.3 sd shift is visible


@pytest.mark.parametrize("k", [2, 3, 7])
def test_categorical_drift_matches_scipy(k):
    a = RNG.integers(0, 50, k).astype(float)
    b = RNG.integers(1, 80, k).astype(float)
    got = stats.categorical_drift(a, b)
    table = np.vstack([a, b])[:, (a + b) > 0]
    ref = sps.chi2_contingency(table)
    assert got.chi_squared_statistic == pytest.approx(ref.statistic, abs=1e-9)
    assert got.chi_squared_pvalue == pytest.approx(ref.pvalue, abs=1e-9)
    p, q = a / a.sum(), b / b.sum()
    assert got.js_distance == pytest.approx(jensenshannon(p, q, base=2), abs=1e-9)
    assert got.tv_distance == pytest.approx(0.5 * np.abs(p - q).sum(), abs=1e-12)
    assert got.l_infinity_distance == pytest.approx(np.abs(p - q).max(), abs=1e-12)


def test_categorical_drift_rows_match_scipy_pair_by_pair():
    """The vectorised form the refresh uses: many pairs at once, with categories unseen on one side, two-category
    tables (Yates), single-category tables and empty sides, each against scipy."""
    k = 5
    a = RNG.integers(0, 40, (300, k)) * (RNG.random((300, k)) < 0.7)
    b = RNG.integers(0, 60, (300, k)) * (RNG.random((300, k)) < 0.7)
    a[::9, 2:] = 0
    b[::9, 2:] = 0  # two categories seen: Yates' correction
    a[1::9], b[1::9] = 0, 0
    a[1::9, 0], b[1::9, 0] = 4, 9  # one category: no test
    a[2::9] = 0  # an empty side: no statistics
    valid, stat, dof, tv, linf, js = stats.categorical_drift_rows(a, b)
    assert not valid[2::9].any() and valid[1::9].all()
    checked = 0
    for i in np.flatnonzero(valid):
        seen = (a[i] + b[i]) > 0
        p, q = a[i] / a[i].sum(), b[i] / b[i].sum()
        assert dof[i] == seen.sum() - 1
        if dof[i] > 0:
            ref = sps.chi2_contingency(np.vstack([a[i], b[i]])[:, seen])
            assert stat[i] == pytest.approx(ref.statistic, abs=1e-9)
            checked += 1
        else:
            assert stat[i] == 0.0
        assert js[i] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-9)
        assert tv[i] == pytest.approx(0.5 * np.abs(p - q).sum(), abs=1e-12)
        assert linf[i] == pytest.approx(np.abs(p - q).max(), abs=1e-12)
    assert checked > 200


def test_category_unseen_in_baseline():
    got = stats.categorical_drift(np.array([10.0, 5.0, 5.0]), np.array([30.0, 10.0, 0.0]))
    ref = sps.chi2_contingency(np.array([[10, 5, 5], [30, 10, 0]]))
    assert got.chi_squared_statistic == pytest.approx(ref.statistic, abs=1e-9)
    assert got.l_infinity_distance == pytest.approx(0.25)
    assert 0 < got.js_distance <= 1


def test_single_category_has_no_drift():
    got = stats.categorical_drift(np.array([4.0, 0.0]), np.array([9.0, 0.0]))
    assert (got.chi_squared_statistic, got.chi_squared_pvalue, got.js_distance) == (0.0, 1.0, 0.0)


def test_empty_sides_have_no_statistics():
    empty = stats.Sorted.of(np.array([]))
    full = stats.Sorted.of(np.array([1.0, 2.0]))
    assert stats.numeric_drift(empty, full) is None
    assert stats.numeric_drift(full, empty) is None
    assert stats.categorical_drift(np.zeros(3), np.ones(3)) is None
    profile = stats.numeric_profile(empty)
    assert profile.count == 0 and profile.avg is None and profile.quantiles is None


def test_all_nulls_and_non_finite_values_are_dropped():
    s = stats.Sorted.of(np.array([np.nan, np.inf, -np.inf, np.nan]))
    assert s.n == 0
    mixed = stats.Sorted.of(np.array([1.0, np.nan, np.inf, 3.0]))
    assert mixed.values.tolist() == [1.0, 3.0]
    got = stats.numeric_drift(mixed, stats.Sorted.of(np.array([1.0, 2.0, -np.inf])))
    assert got.ks_statistic == pytest.approx(sps.ks_2samp([1.0, 3.0], [1.0, 2.0]).statistic)


def test_bucket_index_is_exact_on_skewed_and_tied_data():
    b = np.sort(np.concatenate([RNG.lognormal(0, 3, 5000), np.full(3000, 7.0), [1e12, -1e9]]))
    a = np.concatenate([RNG.lognormal(0, 3, 700), np.full(50, 7.0), [-2e9, 2e12, 1e12]])
    indexed = stats.numeric_drift(stats.Sorted.of(a), stats.Sorted.of(b, shared=True), indexed=True)
    assert stats.Sorted.of(b, shared=True).index[0].shape[0] > 1
    ref = sps.ks_2samp(a, b)
    assert indexed.ks_statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert indexed.wasserstein_distance == pytest.approx(sps.wasserstein_distance(a, b), rel=1e-9)


def test_one_row_and_constant_columns():
    one = stats.numeric_profile(stats.Sorted.of(np.array([4.0])))
    assert (one.count, one.avg, one.stddev, one.min, one.max, one.median) == (1, 4.0, None, 4.0, 4.0, 4.0)
    const = stats.Sorted.of(np.full(100, 2.5))
    p = stats.numeric_profile(const)
    assert p.stddev == 0.0 and p.distinct_count == 1 and p.quantiles == [2.5] * len(stats.QUANTILE_LEVELS)
    same = stats.numeric_drift(const, stats.Sorted.of(np.full(30, 2.5)))
    assert same.ks_statistic == 0.0 and same.wasserstein_distance == 0.0 and same.ks_pvalue == 1.0
    assert same.population_stability_index == 0.0
    moved = stats.numeric_drift(const, stats.Sorted.of(np.full(30, 3.5)))
    assert moved.ks_statistic == 1.0 and moved.wasserstein_distance == pytest.approx(1.0)


def test_profile_matches_numpy():
    v = RNG.normal(3, 2, 1001)
    p = stats.numeric_profile(stats.Sorted.of(v))
    assert p.avg == pytest.approx(v.mean(), rel=1e-12)
    assert p.stddev == pytest.approx(v.std(ddof=1), rel=1e-12)
    assert p.quantiles == pytest.approx(np.quantile(v, stats.QUANTILE_LEVELS).tolist(), rel=1e-12)
    assert p.median == pytest.approx(np.median(v))


def test_quality_matches_sklearn():
    from sklearn import metrics as skm

    y = RNG.normal(10, 3, 500)
    pred = y + RNG.normal(0, 1, 500)
    q = stats.regression_quality(y, pred)
    assert q["root_mean_squared_error"] == pytest.approx(skm.root_mean_squared_error(y, pred), rel=1e-12)
    assert q["r2_score"] == pytest.approx(skm.r2_score(y, pred), rel=1e-12)
    assert q["mean_absolute_percentage_error"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    yc = RNG.integers(0, 3, 400)
    pc = np.where(RNG.random(400) < 0.7, yc, RNG.integers(0, 3, 400))
    c = stats.classification_quality(yc, pc)
    assert c["accuracy_score"] == pytest.approx(skm.accuracy_score(yc, pc))
    for avg in ("macro", "weighted"):
        assert c["f1_score"][avg] == pytest.approx(skm.f1_score(yc, pc, average=avg))
        assert c["precision"][avg] == pytest.approx(skm.precision_score(yc, pc, average=avg, zero_division=0))


@pytest.mark.parametrize("case", ["normal", "near_ties", "nonfinite", "integers", "constant", "coarse",
                                  "many_groups"])
def test_value_order_matches_argsort(case):
    """The packed-key value ordering of the numeric pass equals an argsort's (finite values, any order in ties)."""
    from workloads.monitoring import kernels

    if kernels.order_keys is None:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(3)
    n = 20_000
    vals = rng.normal(size=n)
    if case == "near_ties":  # values that differ only in their lowest bits, in other groups
        vals[1::2] = np.nextafter(vals[::2], np.inf)
        vals[::7] = -0.0
        vals[::11] = 0.0
    elif case == "nonfinite":
        vals[::5] = np.nan
        vals[::13] = np.inf
        vals[::17] = -np.inf
    elif case == "integers":
        vals = np.round(vals * 3)
    elif case == "constant":
        vals = np.full(n, 2.5)
    elif case == "coarse":  # large values with many near collisions: falls back to an argsort
        vals = 1.7e18 + rng.integers(0, 10**12, n).astype(float)
    gid = rng.integers(0, 60, n).astype(np.uint16)
    if case == "many_groups":  # group ids too wide to pack beside the row index: gathered from gid itself
        gid = rng.integers(0, 10**6, n)
        vals[::9] = np.nan
    # Without buffers, and in reused buffers larger than needed and holding an earlier column's leftovers.
    leftovers = (np.full(n + 99, 7, dtype=np.uint64), np.full(n + 99, 9.5), np.full(n + 99, 3, dtype=gid.dtype),
                 np.full(n + 99, 5, dtype=np.uint32))
    for buffers in (None, leftovers):
        sv, sg = kernels.value_order(vals, gid, buffers)
        finite = np.isfinite(vals)
        assert np.array_equal(sv, np.sort(vals[finite]))
        got = np.lexsort((sg, sv))
        want = np.lexsort((gid[finite], vals[finite]))
        assert np.array_equal(sg[got], gid[finite][want])
