"""Exact drift, profile and quality statistics, computed on sorted numpy arrays.

Every drift statistic works on a *pair* of samples: the window being judged (``a``) and what it is compared
with (``b``: the previous window or the baseline). Both arrive sorted and finite; sorting is the only
super-linear step, and it is done once per (window, column) by the caller.

Agreement with scipy, on the same data:

- ``ks_statistic``: ``scipy.stats.ks_2samp(a, b).statistic`` (the same ECDF counts, evaluated at every point of
  ``a`` and at the left limits that stand for ``b``'s points; equal to within an ulp).
- ``ks_pvalue``: ``exact=True`` reproduces ``ks_2samp(method="auto")``: the lattice-path exact distribution
  when both samples have at most 10,000 rows, else Smirnov's ``kstwo.sf(d, round(n1*n2/(n1+n2)))``.
  The default fast method is identical to scipy whenever a sample exceeds 10,000 rows (Smirnov's formula, as
  scipy). Otherwise it uses the exact lattice-path distribution while the effective size
  ``en = n1*n2/(n1+n2)`` is below 1,250 (well under a few milliseconds each), and above that Smirnov's formula
  with a continuity correction: ``D`` lives on the lattice of multiples of ``gcd(n1, n2)/(n1*n2)``, so the
  formula is evaluated half a lattice step below ``D``. Without it, equal or commensurate sample sizes (a
  coarse lattice) put the formula up to 0.009 from scipy's exact value at ``en`` = 1,000; with it the largest
  difference is about ``0.14/sqrt(en)`` (0.004 at 1,250; measured in the tests), within 0.005 everywhere.
- ``wasserstein``: ``scipy.stats.wasserstein_distance`` by integrating ``|Fa - Fb|`` between consecutive
  points of ``a``, using prefix sums of ``b`` (O(n_a) after sorting, not O(n_a + n_b)).

The same formulas run in one compiled pass per pair in :mod:`workloads.monitoring.kernels` (numba) when it is
available; the numpy versions here are the reference and the fallback, and the tests hold both to scipy.
- ``chi_squared``: ``scipy.stats.chi2_contingency`` of the 2 x k table (window counts, baseline counts) over
  the categories seen in either, with scipy's default Yates correction when k == 2.
- ``js_distance``: ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` (bounded in [0, 1]).
- ``population_stability_index``: 10 bins whose edges are the comparison sample's deciles
  ``b[floor(i * n_b / 10)]`` for i = 1..9; a value ``v`` falls in bin ``#{edges <= v}``; an empty bin's
  proportion is replaced by ``PSI_EPSILON``; ``PSI = sum((p_a - p_b) * ln(p_a / p_b))``.

Missing values: NaN and +/-inf count as nulls and are excluded from every distribution statistic.
A pair with an empty side yields no statistics (``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workloads.monitoring import kernels

PSI_BINS = 10
PSI_EPSILON = 1e-4
FAST_KS_EXACT_BELOW = 1250.0  # effective size below which the fast method still uses the exact distribution
SCIPY_EXACT_MAX_N = 10000  # scipy's ks_2samp 'auto' rule
USE_KERNEL = kernels.numeric_pair is not None  # compiled one-pass pair kernel; numpy formulas otherwise
# The bucket index pays off only when the comparison sample is much larger than the window: for sorted
# windows a few times smaller than the baseline, galloping forward is cache-friendlier (measured ~1.7x faster
# at 16.7k vs 200k rows).
INDEX_MIN_RATIO = 64
QUANTILE_LEVELS = tuple(round(i * 0.05, 2) for i in range(21))
FREQUENT_ITEMS = 10


# --------------------------------------------------------------------------------------------- sorted samples
@dataclass
class Sorted:
    """A sorted finite sample with the per-value tie counts and prefix sums drift statistics need."""

    values: np.ndarray
    _le: np.ndarray | None = None
    _lt: np.ndarray | None = None
    _cum: np.ndarray | None = None
    _psi_props: np.ndarray | None = None
    shared: bool = False  # compared against many windows (a baseline): keep derived arrays cached
    _index: tuple | None = None

    @classmethod
    def of(cls, values: np.ndarray, shared: bool = False) -> Sorted:
        """Sort the finite values of ``values`` (NaN and inf dropped)."""
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        return cls(np.sort(arr), shared=shared)

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @property
    def le(self) -> np.ndarray:
        """For each position, how many values of the sample are <= the value there (end of its tie run)."""
        if self._le is None:
            self._le, self._lt = _tie_counts(self.values)
        return self._le

    @property
    def lt(self) -> np.ndarray:
        """For each position, how many values of the sample are < the value there (start of its tie run)."""
        if self._lt is None:
            self._le, self._lt = _tie_counts(self.values)
        return self._lt

    @property
    def index(self) -> tuple:
        """Bucket index for O(1) rank lookups (shared samples only; others are galloped through)."""
        if not self.shared or self.n < 1024:
            return kernels.NO_INDEX, 0.0, 0.0
        if self._index is None:
            self._index = kernels.bucket_index(self.values)
        return self._index

    @property
    def cum(self) -> np.ndarray:
        """Prefix sums: ``cum[k] = sum(values[:k])`` (cached only on ``shared`` samples, to bound memory)."""
        if self._cum is not None:
            return self._cum
        cum = np.empty(self.n + 1, dtype=np.float64)
        cum[0] = 0.0
        np.cumsum(self.values, out=cum[1:])
        if self.shared:
            self._cum = cum
        return cum


def _tie_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of values ``<=`` and ``<`` each element of a sorted array (ties share their run's counts)."""
    n = values.shape[0]
    idx = np.arange(n, dtype=np.int64)
    if n == 0:
        return idx, idx
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(values[1:], values[:-1], out=new[1:])
    if new.all():
        return idx + 1, idx
    lt = np.maximum.accumulate(np.where(new, idx, 0))
    is_end = np.empty(n, dtype=bool)
    is_end[-1] = True
    is_end[:-1] = new[1:]
    le = np.minimum.accumulate(np.where(is_end, idx + 1, n)[::-1])[::-1]
    return le, lt


# ------------------------------------------------------------------------------------------------ KS p-values
def _exact_ks_pvalue(d: float, n1: int, n2: int) -> float | None:
    """scipy's exact two-sided lattice-path probability (None when it is numerically out of reach)."""
    try:
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:  # pragma: no cover - private helper moved: fall back to Smirnov's formula
        return None
    with np.errstate(all="ignore"):
        success, _, prob = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
    return float(np.clip(prob, 0.0, 1.0)) if success else None


def _kolmogorov_sf(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``scipy.stats.kstwo.sf(x, n)`` vectorised for n > 140 (scipy evaluates it one value at a time).

    Ruben-Gambino's exact values at the extremes, as scipy; elsewhere the Pelz-Good expansion, which scipy
    also uses (next to Durbin's matrix method and the exact Smirnov sum, both O(n) per value and slow); for
    n > 140 the two agree with scipy to about 1e-7 (measured in the tests), far inside the fast tolerance.
    """
    from scipy.special import gammaln

    x, n = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(n, dtype=np.float64))
    out = np.full(x.shape, np.nan)
    t = n * x
    nx2 = t * x
    with np.errstate(all="ignore"):
        for mask, value in (
            (x >= 1.0, lambda m: 0.0),
            (x <= 0.0, lambda m: 1.0),
            (t <= 0.5, lambda m: 1.0),
            (t <= 1.0, lambda m: 1.0 - np.exp(gammaln(n[m] + 1) - n[m] * np.log(n[m]) + n[m] * np.log(2 * t[m] - 1))),
            (t >= n - 1, lambda m: 2 * (1.0 - x[m]) ** n[m]),
            (nx2 >= 18.0, lambda m: 2.0 * np.exp(-2.0 * nx2[m])),  # below 5e-16: Kolmogorov's leading term
            (np.ones(x.shape, dtype=bool), lambda m: 1.0 - _pelz_good_cdf(x[m], n[m])),
        ):
            todo = mask & np.isnan(out)
            if todo.any():
                out[todo] = value(todo)
    return np.clip(out, 0.0, 1.0)


def _pelz_good_cdf(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pelz-Good (1976) approximation of P(D_n <= x), vectorised from scipy's ``_kolmogn_PelzGood``."""
    pi2, pi4, pi6 = np.pi**2, np.pi**4, np.pi**6
    sqrt2pi = np.sqrt(2 * np.pi)
    z = np.sqrt(n) * np.maximum(x, 1e-300)
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    q = np.exp(np.maximum(-pi2 / 8 / z2, -708.0))
    k1a, k1b = -z2, pi2 / 4
    k2a, k2b, k2c = 6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, pi4 * (1 - 2 * z2) / 16
    k3d, k3c = pi6 * (5 - 30 * z2) / 64, pi4 * (-60 * z2 + 212 * z4) / 16
    k3b, k3a = pi2 * (135 * z4 - 96 * z6) / 4, -30 * z6 - 90 * z**8
    maxk = np.ceil(16 * z / np.pi).astype(np.int64)
    acc = np.zeros((4,) + z.shape)
    for k in range(int(maxk.max(initial=1)), 0, -1):
        m2 = (2 * k - 1) ** 2
        active = k <= maxk  # terms beyond an element's own maxk are not in scipy's sum
        qpower = np.where(active, q ** (8 * k), 1.0)
        coeffs = np.stack([np.ones_like(z), k1a + k1b * m2, k2a + k2b * m2 + k2c * m2**2,
                           k3a + k3b * m2 + k3c * m2**2 + k3d * m2**3])
        acc = np.where(active, acc * qpower + coeffs, acc)
    acc *= q * sqrt2pi
    acc /= np.stack([z, 6 * z4, 72 * z**7, 6480 * z**10])
    q2 = np.exp(-pi2 / 2 / z2)
    k2extra = np.zeros(z.shape)
    k3extra = np.zeros(z.shape)
    sqrt3z = np.sqrt(3) * z
    for k in range(int(maxk.max(initial=1)), 0, -1):
        active = k <= maxk
        qk = np.where(active, q2 ** (k * k), 0.0)
        k2extra += k * k * qk
        k3extra += (sqrt3z + np.pi * k) * (sqrt3z - np.pi * k) * k * k * qk
    acc[2] += k2extra * pi2 * sqrt2pi / (-36 * z3)
    acc[3] += k3extra * pi2 * sqrt2pi / (216 * z6)
    acc /= np.stack([np.ones_like(n), np.sqrt(n), n, n**1.5])
    return np.where(-pi2 / 8 / z2 < -708, 0.0, acc.sum(axis=0))


def ks_pvalues(d, n1, n2, exact: bool = False, workers: int = 1) -> np.ndarray:
    """Two-sided KS p-values for statistics ``d`` between samples of sizes ``n1`` and ``n2`` (arrays).

    ``exact=True`` follows scipy's ``ks_2samp(method="auto")``; the default (fast) method is described in
    the module docstring. Smirnov's formula is evaluated in one vectorised call; the exact lattice-path
    probabilities (scipy's compiled routine releases the GIL) on ``workers`` threads when there are many.
    """
    from scipy.stats import distributions

    d = np.atleast_1d(np.asarray(d, dtype=np.float64))
    n1 = np.atleast_1d(np.asarray(n1, dtype=np.int64))
    n2 = np.atleast_1d(np.asarray(n2, dtype=np.int64))
    out = np.full(d.shape, np.nan)
    if d.size == 0:
        return out
    en = n1 * n2 / (n1 + n2)
    use_exact = np.maximum(n1, n2) <= SCIPY_EXACT_MAX_N
    if not exact:
        use_exact &= en < FAST_KS_EXACT_BELOW
    todo = np.flatnonzero(use_exact).tolist()

    def exact_one(i):
        return _exact_ks_pvalue(float(d[i]), int(n1[i]), int(n2[i]))

    if workers > 1 and len(todo) > 16:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            probs = list(pool.map(exact_one, todo))
    else:
        probs = [exact_one(i) for i in todo]
    for i, prob in zip(todo, probs, strict=True):
        if prob is not None:
            out[i] = prob
    rest = np.isnan(out)
    n = np.round(en)
    if exact:  # scipy's own (per-value) evaluation of Smirnov's distribution
        if rest.any():
            out[rest] = np.clip(distributions.kstwo.sf(d[rest], n[rest]), 0.0, 1.0)
        return out
    # Where scipy would be exact, the continuity correction (module docstring); elsewhere scipy's own formula.
    lattice = np.gcd(n1, n2) / (n1.astype(np.float64) * n2)
    d = np.where(rest & (np.maximum(n1, n2) <= SCIPY_EXACT_MAX_N), np.maximum(d - 0.5 * lattice, 0.0), d)
    small = rest & (n <= 140)
    if small.any():
        out[small] = np.clip(distributions.kstwo.sf(d[small], n[small]), 0.0, 1.0)
    rest &= ~small
    if rest.any():
        out[rest] = _kolmogorov_sf(d[rest], n[rest])
    return out


def ks_pvalue(d: float, n1: int, n2: int, exact: bool = False) -> float:
    """Scalar :func:`ks_pvalues`."""
    return float(ks_pvalues([d], [n1], [n2], exact)[0])


# ------------------------------------------------------------------------------------------- numeric drift
@dataclass
class NumericDrift:
    ks_statistic: float
    ks_pvalue: float
    wasserstein_distance: float
    population_stability_index: float


def numeric_drift(a: Sorted, b: Sorted, exact_pvalues: bool = False, b_le: np.ndarray | None = None,
                  pvalue: bool = True, kernel: bool | None = None, indexed: bool | None = None
                  ) -> NumericDrift | None:
    """KS test, Wasserstein distance and PSI of window ``a`` against comparison ``b``; None if either is empty.

    Args:
        a, b: the sorted samples.
        exact_pvalues: KS p-value as scipy's ``ks_2samp`` (else the fast method).
        b_le: precomputed ``searchsorted(b.values, a.values, "right")`` (see :func:`counts_in`).
        pvalue: False leaves ``ks_pvalue`` NaN, for callers that compute all p-values in one call.
        kernel: use the compiled one-pass kernel (default: when numba is available) or the numpy formulas.
        indexed: locate ``a``'s values in ``b`` through ``b``'s bucket index (shared samples only) rather than
            by galloping; default: when ``b`` has over ``INDEX_MIN_RATIO`` times as many values as ``a``.
    """
    na, nb = a.n, b.n
    if na == 0 or nb == 0:
        return None
    av, bv = a.values, b.values
    if (USE_KERNEL if kernel is None else kernel) and b_le is None:
        if indexed is None:
            indexed = nb > INDEX_MIN_RATIO * na
        index = b.index if indexed else (kernels.NO_INDEX, 0.0, 0.0)
        d, w, counts = kernels.numeric_pair(av, bv, b.cum, PSI_BINS, *index)
        p = ks_pvalue(d, na, nb, exact=exact_pvalues) if pvalue else float("nan")
        return NumericDrift(float(d), p, float(w), psi_from_proportions(counts / na, psi_proportions(b)))
    if b_le is None:
        b_le = np.searchsorted(bv, av, side="right")
    b_lt = _counts_below(bv, av, b_le)
    a_le, a_lt = a.le, a.lt
    d = max(float(np.max(np.abs(a_le / na - b_le / nb))), float(np.max(np.abs(a_lt / na - b_lt / nb))))
    p = ks_pvalue(d, na, nb, exact=exact_pvalues) if pvalue else float("nan")
    return NumericDrift(d, p, _wasserstein(av, bv, b.cum, b_le), _psi(a_le, b_le, b, na))


def counts_in(b: Sorted, samples: list[Sorted]) -> list[np.ndarray]:
    """``searchsorted(b, s, "right")`` for many sorted samples in one call (one pass over ``b``'s index)."""
    if not samples:
        return []
    joined = np.concatenate([s.values for s in samples])
    counts = np.searchsorted(b.values, joined, side="right")
    return np.split(counts, np.cumsum([s.n for s in samples])[:-1])


def _counts_below(bv: np.ndarray, av: np.ndarray, b_le: np.ndarray) -> np.ndarray:
    """``searchsorted(bv, av, "left")`` from the ``"right"`` counts: they differ only where ``a`` ties ``b``."""
    tied = b_le > 0
    tied[tied] = bv[b_le[tied] - 1] == av[tied]
    if not tied.any():
        return b_le
    b_lt = b_le.copy()
    b_lt[tied] = np.searchsorted(bv, av[tied], side="left")
    return b_lt


def _wasserstein(av: np.ndarray, bv: np.ndarray, bcum: np.ndarray, b_le: np.ndarray) -> float:
    """∫|Fa - Fb| dx, summed over the intervals between consecutive points of ``a``.

    On ``[L, R)`` ``Fa`` is the constant ``c``; ``Fb`` crosses ``c`` at ``x* = b[ceil(c * nb) - 1]`` (clipped to
    the interval); with ``H(x) = ∫ Fb = (k x - S_k) / nb`` the piece is
    ``c (x* - L) - (H(x*) - H(L)) + (H(R) - H(x*)) - c (R - x*)``.
    """
    na, nb = av.shape[0], bv.shape[0]
    j = np.arange(1, na + 1, dtype=np.int64)
    c = j / na
    left = av
    right = np.empty(na, dtype=np.float64)
    right[:-1] = av[1:]
    right[-1] = max(av[-1], bv[-1])
    k_left = b_le
    k_right = np.empty(na, dtype=np.int64)
    k_right[:-1] = b_le[1:]
    k_right[-1] = np.searchsorted(bv, right[-1], side="right")
    m = (j * nb + na - 1) // na  # ceil(c * nb) in exact integer arithmetic; 1 <= m <= nb
    cross = bv[m - 1]
    below, above = cross < left, cross > right
    x_star = np.where(below, left, np.where(above, right, cross))
    k_star = np.where(below, k_left, np.where(above, k_right, m))

    def h(x, k):
        return (k * x - bcum[k]) / nb

    h_left, h_right, h_star = h(left, k_left), h(right, k_right), h(x_star, k_star)
    pieces = c * (x_star - left) - (h_star - h_left) + (h_right - h_star) - c * (right - x_star)
    head = (b_le[0] * av[0] - bcum[b_le[0]]) / nb  # ∫ Fb before a's first point (Fa = 0 there)
    return float(head + pieces.sum())


def _psi_bins(b_le: np.ndarray, nb: int) -> np.ndarray:
    """PSI bin of values whose count of comparison values ``<=`` them is ``b_le`` (see module docstring)."""
    bins = (PSI_BINS * b_le + nb - 1) // nb - 1
    np.clip(bins, 0, PSI_BINS - 1, out=bins)
    return bins


def psi_proportions(b: Sorted) -> np.ndarray:
    """Proportions of the comparison sample in its own PSI bins (cached on the sample)."""
    if b._psi_props is None:
        if USE_KERNEL:
            b._psi_props = kernels.self_psi_counts(b.values, PSI_BINS) / b.n
        else:
            b._psi_props = np.bincount(_psi_bins(b.le, b.n), minlength=PSI_BINS) / b.n
    return b._psi_props


def _psi(a_le: np.ndarray, b_le_at_a: np.ndarray, b: Sorted, na: int) -> float:
    pa = np.bincount(_psi_bins(b_le_at_a, b.n), minlength=PSI_BINS) / na
    return psi_from_proportions(pa, psi_proportions(b))


def psi_from_proportions(pa: np.ndarray, pb: np.ndarray) -> float:
    return float(psi_rows(pa, pb))


def psi_rows(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """PSI of each row of bin proportions ``pa`` against the same row of ``pb`` (empty bins count as epsilon)."""
    pa = np.where(pa == 0, PSI_EPSILON, pa)
    pb = np.where(pb == 0, PSI_EPSILON, pb)
    return np.sum((pa - pb) * np.log(pa / pb), axis=-1)


def psi_bin_edges(b_sorted: np.ndarray) -> np.ndarray:
    """The documented PSI bin edges of a sorted comparison sample (deciles by lower order statistic)."""
    nb = b_sorted.shape[0]
    return b_sorted[(np.arange(1, PSI_BINS) * nb) // PSI_BINS]


# --------------------------------------------------------------------------------------- categorical drift
@dataclass
class CategoricalDrift:
    chi_squared_statistic: float
    chi_squared_pvalue: float
    tv_distance: float
    l_infinity_distance: float
    js_distance: float
    chi_squared_dof: int = 0


def categorical_drift(a_counts: np.ndarray, b_counts: np.ndarray, pvalue: bool = True) -> CategoricalDrift | None:
    """Chi-squared test and distances between two count vectors over the same categories."""
    a_counts = np.asarray(a_counts, dtype=np.float64)
    b_counts = np.asarray(b_counts, dtype=np.float64)
    na, nb = a_counts.sum(), b_counts.sum()
    if na == 0 or nb == 0:
        return None
    seen = (a_counts + b_counts) > 0
    obs = np.vstack([a_counts[seen], b_counts[seen]])
    stat, dof = _chi2_statistic(obs)
    p_value = chi2_pvalues([stat], [dof])[0] if pvalue else float("nan")
    p, q = a_counts / na, b_counts / nb
    diff = np.abs(p - q)
    return CategoricalDrift(stat, float(p_value), float(0.5 * diff.sum()), float(diff.max()), _js(p, q), dof)


def categorical_drift_rows(a_counts: np.ndarray, b_counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`categorical_drift` of each row of ``a_counts`` against the same row of ``b_counts`` (pairs x
    categories), vectorised: ``(valid, chi-squared statistic, dof, tv, l-infinity, js)``; rows where either side
    is empty are not ``valid`` (their values are meaningless)."""
    a = np.asarray(a_counts, dtype=np.float64)
    b = np.asarray(b_counts, dtype=np.float64)
    na, nb = a.sum(axis=1), b.sum(axis=1)
    valid = (na > 0) & (nb > 0)
    na_, nb_ = np.where(valid, na, 1.0), np.where(valid, nb, 1.0)
    col = a + b
    seen = col > 0
    dof = seen.sum(axis=1) - 1
    total = (na_ + nb_)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.zeros(a.shape)
        for obs, rows in ((a, na_), (b, nb_)):
            expected = rows[:, None] * col / total
            diff = expected - obs
            # Yates' continuity correction for 2 x 2 tables, as scipy.stats.chi2_contingency applies it
            corrected = np.where((dof == 1)[:, None], obs + np.minimum(0.5, np.abs(diff)) * np.sign(diff), obs)
            terms += np.where(seen, (corrected - expected) ** 2 / np.where(seen, expected, 1.0), 0.0)
    stat = np.where(dof > 0, terms.sum(axis=1), 0.0)
    p, q = a / na_[:, None], b / nb_[:, None]
    diff = np.abs(p - q)
    from scipy.special import rel_entr

    m = (p + q) / 2.0
    js = (np.sum(rel_entr(p, m), axis=1) + np.sum(rel_entr(q, m), axis=1)) / np.log(2.0)
    return valid, stat, np.maximum(dof, 0), 0.5 * diff.sum(axis=1), diff.max(axis=1), np.sqrt(js / 2.0)


def chi2_pvalues(stat, dof) -> np.ndarray:
    """``chi2.sf(stat, dof)`` in one call; a 0-dof test (one category) has p-value 1, as in scipy."""
    from scipy.stats import chi2

    stat, dof = np.asarray(stat, dtype=np.float64), np.asarray(dof, dtype=np.int64)
    out = np.ones(stat.shape)
    pos = dof > 0
    if pos.any():
        out[pos] = chi2.sf(stat[pos], dof[pos])
    return out


def _chi2_statistic(observed: np.ndarray) -> tuple[float, int]:
    """``scipy.stats.chi2_contingency``'s statistic and dof for a 2 x k table with no all-zero column."""
    dof = observed.shape[1] - 1
    if dof == 0:
        return 0.0, 0
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    if dof == 1:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    terms = (observed - expected) ** 2 / expected
    return float(terms.sum()), dof


def _js(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.special import rel_entr

    m = (p + q) / 2.0
    js = np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))
    js /= np.log(2.0)
    return float(np.sqrt(js / 2.0))


# ------------------------------------------------------------------------------------------------ profiles
@dataclass
class NumericProfile:
    count: int
    avg: float | None
    stddev: float | None
    min: float | None
    max: float | None
    quantiles: list[float] | None
    median: float | None
    distinct_count: int
    zeros: int = 0  # values equal to zero (0.0 and -0.0)


def numeric_profile(s: Sorted) -> NumericProfile:
    """Profile of a sorted finite sample; stddev is the sample standard deviation (ddof=1), like Spark."""
    v, n = s.values, s.n
    if n == 0:
        return NumericProfile(0, None, None, None, None, None, None, 0)
    avg = float(v.sum() / n)
    std = float(np.sqrt(np.sum((v - avg) ** 2) / (n - 1))) if n > 1 else None
    qs = quantiles_sorted(v, QUANTILE_LEVELS)
    distinct = int(1 + np.count_nonzero(v[1:] != v[:-1]))
    zeros = int(np.searchsorted(v, 0.0, side="right") - np.searchsorted(v, 0.0, side="left"))
    return NumericProfile(n, avg, std, float(v[0]), float(v[-1]), qs, float(quantiles_sorted(v, (0.5,))[0]),
                          distinct, zeros)


def quantiles_sorted(v: np.ndarray, levels) -> list[float]:
    """``numpy.quantile(v, levels)`` (linear interpolation) of an already sorted array."""
    n = v.shape[0]
    pos = np.asarray(levels, dtype=np.float64) * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    lo_v, hi_v = v[lo], v[hi]
    return [float(x) for x in lo_v + (hi_v - lo_v) * frac]


# ------------------------------------------------------------------------------------------------- quality
def regression_quality(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """sklearn's regression metrics on rows with both label and prediction (already filtered, finite)."""
    n = y.shape[0]
    if n == 0:
        return {}
    err = pred - y
    mse = float(np.mean(err**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum(err**2))
    if ss_tot == 0.0:
        r2 = 1.0 if ss_res == 0.0 else 0.0  # sklearn's force_finite convention
    else:
        r2 = 1.0 - ss_res / ss_tot
    mape = float(np.mean(np.abs(err) / np.maximum(np.abs(y), np.finfo(np.float64).eps)))
    return {
        "mean_squared_error": mse,
        "root_mean_squared_error": math.sqrt(mse),
        "mean_absolute_error": float(np.mean(np.abs(err))),
        "r2_score": r2 if n > 1 else None,
        "mean_absolute_percentage_error": mape,
    }


def classification_quality(y: np.ndarray, pred: np.ndarray) -> dict:
    """Accuracy and macro / weighted precision, recall and F1 over the labels present (sklearn, zero_division=0)."""
    n = y.shape[0]
    if n == 0:
        return {}
    labels, inverse = np.unique(np.concatenate([y, pred]), return_inverse=True)
    k = labels.shape[0]
    yi, pi = inverse[:n], inverse[n:]
    tp = np.bincount(yi[yi == pi], minlength=k).astype(np.float64)
    support = np.bincount(yi, minlength=k).astype(np.float64)
    predicted = np.bincount(pi, minlength=k).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    weights = support / support.sum()

    def avg(x):
        return {"macro": float(x.mean()), "weighted": float(np.sum(x * weights))}

    return {
        "accuracy_score": float(tp.sum() / n),
        "precision": avg(precision),
        "recall": avg(recall),
        "f1_score": avg(f1),
    }
