"""Compiled (numba) kernels for the numeric drift of sorted pairs.

:func:`_ranked_pair` accumulates the KS statistic, the Wasserstein integral and the PSI bin counts of one pair
in one pass over the window ``a``'s values, given each value's ``#b <= x`` in the comparison sample ``b``, with
exactly the formulas of :mod:`workloads.monitoring.stats` (which is the reference and the fallback without
numba). For one pair (:func:`numeric_pair`) those ranks come from galloping forward in the sorted ``b``
(O(n_a log(n_b / n_a)) in all, not a binary search per value).

The refresh itself uses the column kernels at the end: :func:`column_ranks` walks one column in value order
once for all groups (ranks in the previous window and the baseline become counters), then
:func:`segment_pairs` evaluates every pair from those ranks with the same formulas (``_ranked_pair``).
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; the numpy path covers its absence
    njit = None


def _count_lt(b, x, start):
    """Smallest index ``>= start`` whose value is ``>= x`` (= ``#b < x``), given ``b[:start] < x``."""
    n = b.shape[0]
    # Short linear probe first: consecutive values usually land a few places further (predictable branches).
    end = min(start + 16, n)
    while start < end:
        if not b[start] < x:
            return start
        start += 1
    if start >= n or b[start] >= x:
        return start
    lo = start
    step = 1
    hi = lo + step
    while hi < n and b[hi] < x:
        lo = hi
        step *= 2
        hi = lo + step
    hi = min(hi, n)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if b[mid] < x:
            lo = mid
        else:
            hi = mid
    return hi


def _count_lt_indexed(b, x, bucket_start, b_min, scale):
    """``#b < x`` through a bucket index over b's value range (see :func:`bucket_index`)."""
    n = b.shape[0]
    if x <= b[0]:
        return 0
    if x > b[n - 1]:
        return n
    n_buckets = bucket_start.shape[0] - 1
    f = (x - b_min) * scale
    k = n_buckets - 1 if f >= n_buckets - 1 else int(f)
    lo = bucket_start[k]
    hi = bucket_start[k + 1]
    while hi - lo > 8:
        mid = (lo + hi) // 2
        if b[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    while lo < hi and b[lo] < x:
        lo += 1
    return lo


def _h(x, k, bcum, inv_nb):
    return (k * x - bcum[k]) * inv_nb


def _ceil_ratio(num, den, approx):
    """``ceil(num / den)`` for non-negative int64s from a float ``approx``imation, corrected exactly."""
    m = np.int64(np.ceil(approx))
    while m > 0 and (m - 1) * den >= num:
        m -= 1
    while m * den < num:
        m += 1
    return m


def _interval(left, right, ca, na, inv_na, k_left, k_right, bv, bcum, nb, inv_nb):
    """∫ over [left, right) of |ca/na - Fb(x)| dx (see ``stats._wasserstein``)."""
    if right <= left:
        return 0.0
    c = ca * inv_na
    m = _ceil_ratio(ca * nb, na, c * nb)
    if m == 0:
        x_star, k_star = left, k_left
    else:
        cross = bv[m - 1]
        if cross < left:
            x_star, k_star = left, k_left
        elif cross > right:
            x_star, k_star = right, k_right
        else:
            x_star, k_star = cross, m
    h_left = _h(left, k_left, bcum, inv_nb)
    h_right = _h(right, k_right, bcum, inv_nb)
    h_star = _h(x_star, k_star, bcum, inv_nb)
    return c * (x_star - left) - (h_star - h_left) + (h_right - h_star) - c * (right - x_star)


def _numeric_pair(av, bv, bcum, nbins, bucket_start, b_min, scale):
    """KS statistic, Wasserstein distance and PSI bin counts of sorted ``a`` against sorted ``b``: each value's
    ``#b <= x`` (= ``#b < nextafter(x, +inf)``, exact for finite doubles) found by galloping forward in ``b``, or
    through ``b``'s bucket index (``bucket_start`` of more than one entry), then :func:`_ranked_pair`."""
    na = av.shape[0]
    a_le = np.empty(na, dtype=np.int64)
    j = 0
    for i in range(na):
        above = np.nextafter(av[i], np.inf)
        if bucket_start.shape[0] > 1:
            j = _count_lt_indexed(bv, above, bucket_start, b_min, scale)
        else:
            j = _count_lt(bv, above, j)
        a_le[i] = j
    return _ranked_pair(av, a_le, bv, bcum, nbins)


def _self_psi_counts(bv, nbins):
    """How many of ``b``'s own values fall in each of its PSI bins (ties share their run's bin)."""
    nb = bv.shape[0]
    counts = np.zeros(nbins, dtype=np.int64)
    edge_index = (np.arange(1, nbins) * nb) // nbins
    psi_bin = 0
    i = 0
    while i < nb:
        i2 = i + 1
        while i2 < nb and bv[i2] == bv[i]:
            i2 += 1
        while psi_bin < nbins - 1 and edge_index[psi_bin] < i2:
            psi_bin += 1
        counts[psi_bin] += i2 - i
        i = i2
    return counts


def bucket_index(bv: np.ndarray, buckets: int | None = None) -> tuple[np.ndarray, float, float]:
    """An index of a sorted sample for O(1) rank lookups: ``bucket_start[k]`` is the first position whose value
    falls in bucket ``k`` of ``buckets`` equal-width buckets over ``[b.min, b.max]``.

    Bucketing is monotone in the value, so ``#b < x`` lies between ``bucket_start[k(x)]`` and
    ``bucket_start[k(x) + 1]``: exact, whatever the distribution (a crowded bucket is binary-searched).
    """
    n = bv.shape[0]
    buckets = max(1, buckets or n)
    b_min, b_max = float(bv[0]), float(bv[-1])
    scale = buckets / (b_max - b_min) if b_max > b_min else 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        f = (bv - b_min) * scale
    k = np.where(f >= buckets - 1, buckets - 1, np.floor(f)).astype(np.int64)
    start = np.zeros(buckets + 1, dtype=np.int32 if n < 2**31 else np.int64)
    np.cumsum(np.bincount(k, minlength=buckets), out=start[1:])
    return start, b_min, scale


NO_INDEX = np.zeros(1, dtype=np.int32)


# ------------------------------------------------------------------------------- one pass per column, all groups
def _column_ranks(sv, sg, window_of, prev_g, prev_s, tgt_g, tgt_s, base_cat, base_off,
                  off_g, off_s, out_g, out_s, g_rank, s_rank, scratch):
    """Walk one column's values in increasing order once (``sv``, with their group ids ``sg``: the column and its
    window x version ids ordered by value; ``window_of[g]`` is group ``g``'s window; non-finite values skipped), and
    - write every group's values, sorted, into its segment of ``out_g`` (window x version groups) and ``out_s``
      (window groups over all versions): segments start at ``off_g`` / ``off_s``;
    - record, for each value written, its rank ``#b <= x`` in the samples it is compared with: its baseline
      target (``tgt_g`` / ``tgt_s`` index into ``base_off`` segments of the sorted ``base_cat``, -1 for none; one
      merge pointer per target) and the previous window's group (``prev_g`` / ``prev_s``, -1 for none: its values
      met so far are exactly those up to ``x``, so the rank is a counter). ``#b < x`` is found from it by
      :func:`_ranked_pair`, looking back in ``b`` over values equal to ``x``.

    ``g_rank`` / ``s_rank`` columns: base_le, prev_le (written only where the pair exists). A run of equal values
    is placed as a block before the ``<=`` counts of the previous windows' groups are read, so ties are exact.
    """
    n = sv.shape[0]
    n_targets = base_off.shape[0] - 1
    j_le = base_off[:-1].copy()
    fill_g = np.zeros(off_g.shape[0] - 1, dtype=np.int64)
    fill_s = np.zeros(off_s.shape[0] - 1, dtype=np.int64)
    k = 0
    while k < n:
        x = sv[k]
        if not np.isfinite(x):  # -inf first; +inf and NaN last
            k += 1
            continue
        k2 = k + 1
        while k2 < n and sv[k2] == x:
            k2 += 1
        for t in range(n_targets):
            hi = base_off[t + 1]
            j = j_le[t]
            while j < hi and base_cat[j] <= x:
                j += 1
            j_le[t] = j
        # The placement below is written out twice on purpose: the run path's second loop costs 12% of this
        # kernel on distinct values, and a shared helper taking the arrays costs 4.7x (numba's per-call array
        # reference counting survives inlining).
        if k2 == k + 1:  # a value of its own (the usual case)
            g = sg[k]
            s = window_of[g]
            pos_g = off_g[g] + fill_g[g]
            pos_s = off_s[s] + fill_s[s]
            out_g[pos_g] = x
            out_s[pos_s] = x
            fill_g[g] += 1
            fill_s[s] += 1
            t = tgt_g[g]
            if t >= 0:
                g_rank[pos_g, 0] = j_le[t] - base_off[t]
            t = tgt_s[s]
            if t >= 0:
                s_rank[pos_s, 0] = j_le[t] - base_off[t]
            pg = prev_g[g]
            ps = prev_s[s]
            g_rank[pos_g, 1] = fill_g[pg] if pg >= 0 else 0
            s_rank[pos_s, 1] = fill_s[ps] if ps >= 0 else 0
            k = k2
            continue
        for q in range(k, k2):
            g = sg[q]
            s = window_of[g]
            pos_g = off_g[g] + fill_g[g]
            pos_s = off_s[s] + fill_s[s]
            out_g[pos_g] = x
            out_s[pos_s] = x
            fill_g[g] += 1
            fill_s[s] += 1
            t = tgt_g[g]
            if t >= 0:
                g_rank[pos_g, 0] = j_le[t] - base_off[t]
            t = tgt_s[s]
            if t >= 0:
                s_rank[pos_s, 0] = j_le[t] - base_off[t]
            scratch[0, q - k] = pos_g
            scratch[1, q - k] = pos_s
        # '<=' counts of the previous windows' groups, after the run's values are placed (a group is never its
        # own previous group, so for a value of its own the counter is read as is)
        for q in range(k, k2):
            g = sg[q]
            pg = prev_g[g]
            ps = prev_s[window_of[g]]
            g_rank[scratch[0, q - k], 1] = fill_g[pg] if pg >= 0 else 0
            s_rank[scratch[1, q - k], 1] = fill_s[ps] if ps >= 0 else 0
        k = k2


def _order_keys(vals, bits, keys, gid, aux, compact):
    """Sort keys of ``vals``' finite values, written to the front of ``keys`` (their count is returned): the
    value's order-preserving bit pattern (sign flipped for positives, all bits flipped for negatives) with its low
    ``bits`` bits replaced by the row index (``len(vals) <= 2**bits``). Sorting the keys as unsigned integers
    orders the rows by value, except among values that agree in all but the low ``bits`` bits (see
    :func:`_gather_order`). With ``compact``, ``aux[r]`` gets the replaced bits and ``gid[r]`` above them, so the
    gather reads one small array instead of the values and the group ids."""
    n = vals.shape[0]
    u = vals.view(np.uint64)
    low = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    sign = np.uint64(1) << np.uint64(63)
    j = 0
    for r in range(n):
        if np.isfinite(vals[r]):
            x = u[r]
            if x & sign:
                x = ~x
            else:
                x = x | sign
            keys[j] = (x & ~low) | np.uint64(r)
            if compact:
                aux[r] = np.uint32((x & low) | (np.uint64(gid[r]) << np.uint64(bits)))
            j += 1
    return j


def _gather_order(keys, vals, gid, aux, compact, bits, sv, sv_bits, sg, limit):
    """From the sorted keys of :func:`_order_keys`: the finite values in increasing order (``sv``, with
    ``sv_bits`` the same memory as integers) and their group ids (``sg``). Rows whose keys agree above the low
    ``bits`` bits may come out of order by value: each such value is moved back into place as it is read (an
    insertion sort that stops at the first smaller value, so it never leaves its run of equal high bits);
    returns False (the caller falls back to an argsort) when more than ``limit`` moves are needed."""
    m = keys.shape[0]
    low = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    high = ~low
    sign = np.uint64(1) << np.uint64(63)
    moved = 0
    last = np.uint64(0)
    for k in range(m):
        r = keys[k] & low
        if compact:
            a = np.uint64(aux[r])
            t = (keys[k] & high) | (a & low)  # the value's order-preserving bits: compared as integers
            sv_bits[k] = t ^ sign if t & sign else ~t  # the order transform undone
            sg[k] = a >> np.uint64(bits)
            if t >= last:
                last = t
                continue
        else:
            sv[k] = vals[r]
            sg[k] = gid[r]
        if k > 0 and sv[k] < sv[k - 1]:
            x = sv[k]
            y = sg[k]
            b = k - 1
            while b >= 0 and sv[b] > x:
                sv[b + 1] = sv[b]
                sg[b + 1] = sg[b]
                b -= 1
                moved += 1
            sv[b + 1] = x
            sg[b + 1] = y
            if moved > limit:
                return False
    return True


def value_order(vals: np.ndarray, gid: np.ndarray, buffers: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The finite values of ``vals`` in increasing order and the matching entries of ``gid``: as
    ``vals[o], gid[o]`` for ``o = np.argsort(vals)`` restricted to finite values (ties in any order), but by one
    unsigned-integer ``np.sort`` of packed (value, row) keys, about half an argsort's cost.

    ``buffers``: optional (uint64 keys, float64 values, ``gid``-typed ids, uint32 scratch) arrays of at least
    ``len(vals)`` entries to work in; the results are then views of the second and third.
    """
    vals = np.ascontiguousarray(vals, dtype=np.float64)
    n = vals.shape[0]
    bits = max(1, int(n - 1).bit_length())
    if order_keys is not None and bits <= 32:
        if buffers is None:
            buffers = (np.empty(n, dtype=np.uint64), np.empty(n), np.empty(n, dtype=gid.dtype),
                       np.empty(n, dtype=np.uint32))
        # group ids fit above the row bits of a 32-bit word: gather from that one array
        compact = n > 0 and bits < 32 and int(gid.max()) < (1 << (32 - bits))
        aux = buffers[3]
        m = order_keys(vals, bits, buffers[0], gid, aux, compact)
        keys = buffers[0][:m]
        keys.sort()
        sv, sg = buffers[1][:m], buffers[2][:m]
        if gather_order(keys, vals, gid, aux, compact, bits, sv, sv.view(np.uint64), sg, max(64, m // 64)):
            return sv, sg
    finite = np.flatnonzero(np.isfinite(vals))
    order = finite[np.argsort(vals[finite])]
    return vals[order], gid[order]


def _group_counts(vals, gid, fin_g, inf_g):
    """Finite and infinite values per group (``gid``), in one pass."""
    for r in range(vals.shape[0]):
        x = vals[r]
        if np.isfinite(x):
            fin_g[gid[r]] += 1
        elif np.isinf(x):
            inf_g[gid[r]] += 1


def _ranked_pair(av, a_le, bv, bcum, nbins):
    """:func:`numeric_pair` given the ranks ``#b <= x`` of ``a``'s values in ``b`` (``#b < x`` is found by looking
    back over the values of ``b`` equal to ``x``: ranks grow along ``a``, so those reads go forward in ``b``)."""
    na = av.shape[0]
    nb = bv.shape[0]
    inv_nb = 1.0 / nb
    inv_na = 1.0 / na
    d = 0.0
    w = 0.0
    counts = np.zeros(nbins, dtype=np.int64)
    edge_index = (np.arange(1, nbins) * nb) // nbins
    psi_bin = 0
    i = 0
    prev_x = 0.0
    prev_k = 0
    prev_h = 0.0
    while i < na:
        x = av[i]
        i2 = i + 1
        while i2 < na and av[i2] == x:
            i2 += 1
        j_le = np.int64(a_le[i])
        j_lt = j_le
        while j_lt > 0 and bv[j_lt - 1] == x:
            j_lt -= 1
        d = max(d, abs(i * inv_na - j_lt * inv_nb))
        d = max(d, abs(i2 * inv_na - j_le * inv_nb))
        h_x = _h(x, j_le, bcum, inv_nb)
        if i == 0:
            w += h_x
        else:
            # Fb <= c or Fb >= c on the whole interval: the crossing point is an end (as in _interval).
            t = np.int64(i) * nb
            c = i * inv_na
            if t <= prev_k * np.int64(na):
                w += (h_x - prev_h) - c * (x - prev_x)
            elif t > j_le * np.int64(na):
                w += c * (x - prev_x) - (h_x - prev_h)
            else:
                w += _interval(prev_x, x, i, na, inv_na, prev_k, j_le, bv, bcum, nb, inv_nb)
        while psi_bin < nbins - 1 and edge_index[psi_bin] < j_le:
            psi_bin += 1
        counts[psi_bin] += i2 - i
        prev_x = x
        prev_k = j_le
        prev_h = h_x
        i = i2
    right = max(prev_x, bv[nb - 1])
    w += _interval(prev_x, right, na, na, inv_na, prev_k, nb, bv, bcum, nb, inv_nb)
    return d, w, counts


def _segment_summaries(values, off, levels, nbins, res, quantiles, distinct, zeros, psi, cum):
    """Per sorted segment ``values[off[g]:off[g+1]]``: ``res`` = (sum / n, sum of squared deviations, min, max);
    ``quantiles`` at ``levels`` by linear interpolation (as ``stats.quantiles_sorted``); ``distinct`` values;
    ``zeros``: values equal to zero (the run of zeros, read as it is walked); ``psi`` = :func:`self_psi_counts`;
    prefix sums into ``cum[off[g] + g : off[g+1] + g + 1]`` (the same sequential sums as ``np.cumsum``). Two
    passes over each segment."""
    for g in range(off.shape[0] - 1):
        lo = off[g]
        hi = off[g + 1]
        n = hi - lo
        cum[lo + g] = 0.0
        if n == 0:
            continue
        acc = 0.0
        runs = 0
        b = 0
        i = lo
        while i < hi:
            x = values[i]
            i2 = i
            while i2 < hi and values[i2] == x:
                acc += x
                i2 += 1
                cum[i2 + g] = acc
            runs += 1
            if x == 0.0:
                zeros[g] = i2 - i
            while b < nbins - 1 and (b + 1) * n < (i2 - lo) * nbins:
                b += 1
            psi[g, b] += i2 - i
            i = i2
        avg = acc / n
        ss = 0.0
        for i in range(lo, hi):
            dev = values[i] - avg
            ss += dev * dev
        res[g, 0] = avg
        res[g, 1] = ss
        res[g, 2] = values[lo]
        res[g, 3] = values[hi - 1]
        distinct[g] = runs
        for q in range(levels.shape[0]):
            pos = levels[q] * (n - 1)
            k = np.int64(np.floor(pos))
            k2 = min(k + 1, n - 1)
            lo_v = values[lo + k]
            quantiles[g, q] = lo_v + (values[lo + k2] - lo_v) * (pos - k)


def _segment_pairs(out, rank, off, cum, prev, tgt, base_cat, base_cum, base_off, nbins, res_d, res_w, res_c):
    """Drift of every non-empty segment against its previous segment (row 1) and its baseline target (row 0), from
    the ``<=`` ranks :func:`column_ranks` recorded (``rank[:, 0]`` baseline, ``rank[:, 1]`` previous)."""
    for g in range(off.shape[0] - 1):
        lo = off[g]
        hi = off[g + 1]
        if hi == lo:
            continue
        av = out[lo:hi]
        t = tgt[g]
        if t >= 0 and base_off[t + 1] > base_off[t]:
            bv = base_cat[base_off[t]:base_off[t + 1]]
            bc = base_cum[base_off[t] + t:base_off[t + 1] + t + 1]
            d, w, c = _ranked_pair(av, rank[lo:hi, 0], bv, bc, nbins)
            res_d[0, g] = d
            res_w[0, g] = w
            res_c[0, g, :] = c
        p = prev[g]
        if p >= 0 and off[p + 1] > off[p]:
            bv = out[off[p]:off[p + 1]]
            bc = cum[off[p] + p:off[p + 1] + p + 1]
            d, w, c = _ranked_pair(av, rank[lo:hi, 1], bv, bc, nbins)
            res_d[1, g] = d
            res_w[1, g] = w
            res_c[1, g, :] = c


if njit is not None:
    _count_lt = njit(cache=True, nogil=True)(_count_lt)
    _h = njit(cache=True, nogil=True)(_h)
    _count_lt_indexed = njit(cache=True, nogil=True)(_count_lt_indexed)
    _ceil_ratio = njit(cache=True, nogil=True)(_ceil_ratio)
    _interval = njit(cache=True, nogil=True)(_interval)
    numeric_pair = njit(cache=True, nogil=True)(_numeric_pair)
    self_psi_counts = njit(cache=True, nogil=True)(_self_psi_counts)
    column_ranks = njit(cache=True, nogil=True)(_column_ranks)
    order_keys = njit(cache=True, nogil=True)(_order_keys)
    gather_order = njit(cache=True, nogil=True)(_gather_order)
    group_counts = njit(cache=True, nogil=True)(_group_counts)
    _ranked_pair = njit(cache=True, nogil=True)(_ranked_pair)
    segment_summaries = njit(cache=True, nogil=True)(_segment_summaries)
    segment_pairs = njit(cache=True, nogil=True)(_segment_pairs)
else:  # pragma: no cover
    numeric_pair = self_psi_counts = column_ranks = group_counts = segment_pairs = segment_summaries = None
    order_keys = gather_order = None
