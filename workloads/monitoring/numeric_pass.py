"""Numeric columns of every group with their drift, in one ordered pass per column (compiled kernels).

A column is sorted once (one ``np.sort`` of packed (value, row) keys, :func:`kernels.value_order`) and walked
once in value order (:func:`kernels.column_ranks`): the walk writes every group's sorted segment and, as plain
counter reads, each value's rank in the previous window's group and in the baseline, so no drift pair
searches; :func:`kernels.segment_pairs` then evaluates every pair from those ranks.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from workloads.monitoring import kernels, stats
from workloads.monitoring.groups import GroupStats
from workloads.monitoring.inputs import MonitorData, Rowset
from workloads.monitoring.parallel import parallel_rows, worker_count

_LEVELS = np.array([*stats.QUANTILE_LEVELS, 0.5])


def _segment_summaries(out: np.ndarray, off: np.ndarray, count: int, cum: np.ndarray
                       ) -> tuple[list[stats.NumericProfile], list[np.ndarray | None]]:
    """:func:`stats.numeric_profile` and the own PSI bin proportions of every sorted segment, with their prefix
    sums written to ``cum``, in one compiled call."""
    res = np.zeros((count, 4))
    quantiles = np.zeros((count, _LEVELS.shape[0]))
    distinct = np.zeros(count, dtype=np.int64)
    zeros = np.zeros(count, dtype=np.int64)
    own = np.zeros((count, stats.PSI_BINS), dtype=np.int64)
    kernels.segment_summaries(out, off, _LEVELS, stats.PSI_BINS, res, quantiles, distinct, zeros, own, cum)
    sizes = np.diff(off)
    profiles, props = [], []
    for i in range(count):
        n = int(sizes[i])
        if n == 0:
            profiles.append(stats.NumericProfile(0, None, None, None, None, None, None, 0))
            props.append(None)
            continue
        std = float(np.sqrt(res[i, 1] / (n - 1))) if n > 1 else None
        qs = quantiles[i].tolist()
        profiles.append(stats.NumericProfile(n, float(res[i, 0]), std, float(res[i, 2]), float(res[i, 3]), qs[:-1],
                                             qs[-1], int(distinct[i]), int(zeros[i])))
        props.append(own[i] / n)
    return profiles, props


class _Workspace:
    """Scratch arrays of one thread, reused from column to column: a fresh array of several MB per column would
    be page-faulted in (and zeroed by the kernel) again each time."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape, dtype=np.float64) -> np.ndarray:
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape[0] < size or buffer.dtype != np.dtype(dtype):
            buffer = self._buffers[name] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


def _thread_workspace(local: threading.local) -> _Workspace:
    if not hasattr(local, "workspace"):
        local.workspace = _Workspace()
    return local.workspace


def numeric_pass(data: MonitorData, rows: Rowset, gid: np.ndarray, wi: np.ndarray, n_versions: int,
                  prev_w: np.ndarray, targets: list, baseline_all: GroupStats | None,
                  summaries) -> None:
    """Numeric columns of every window x version group and window ('*') group, with their drift against the
    previous window and the baseline, in one ordered pass per column (see :func:`kernels.column_ranks`):
    one sort of the column replaces the per-group sorts, and every rank lookup becomes a counter read.
    Fills the groups' numeric profiles, ``nulls``, ``nonfinite`` and ``drift`` (the sorted values live only
    while their column is processed, which bounds memory to about one column's working set per thread).
    ``summaries()`` returns the (window x version, window) groups to fill; it is called only after the columns
    are done, so the categorical and quality summaries can be computed meanwhile.
    """
    n_windows = prev_w.shape[0]
    n_groups = n_windows * n_versions
    sid = wi
    g_ids = np.arange(n_groups)
    window_of = g_ids // n_versions
    prev_g = np.where(prev_w[window_of] >= 0, prev_w[window_of] * n_versions + g_ids % n_versions, -1)
    unique_targets = []
    for t in [*targets, baseline_all]:
        if t is not None and all(t is not u for u in unique_targets):
            unique_targets.append(t)
    tgt_g = np.array([-1 if targets[g % n_versions] is None else
                      next(i for i, u in enumerate(unique_targets) if u is targets[g % n_versions])
                      for g in range(n_groups)], dtype=np.int64)
    tgt_s = np.full(n_windows, -1 if baseline_all is None else
                    next(i for i, u in enumerate(unique_targets) if u is baseline_all), dtype=np.int64)
    small = np.uint16 if n_groups <= np.iinfo(np.uint16).max else np.int64
    gid_small = gid.astype(small)
    rows_g = np.bincount(gid, minlength=n_groups)
    rows_s = np.bincount(sid, minlength=n_windows)
    workers = worker_count()
    pool = ThreadPoolExecutor(max_workers=workers) if parallel_rows(rows.n) else None

    local = threading.local()

    def column(item):
        name, vals = item
        fin_g, inf_g = np.zeros(n_groups, dtype=np.int64), np.zeros(n_groups, dtype=np.int64)
        kernels.group_counts(vals, gid_small, fin_g, inf_g)
        fin_s = fin_g.reshape(n_windows, n_versions).sum(axis=1)
        inf_s = inf_g.reshape(n_windows, n_versions).sum(axis=1)
        off_g = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(fin_g, out=off_g[1:])
        off_s = np.zeros(n_windows + 1, dtype=np.int64)
        np.cumsum(fin_s, out=off_s[1:])
        m = int(off_g[-1])
        bases = [t.sorted[name] for t in unique_targets]
        base_props = [stats.psi_proportions(b) if b.n else None for b in bases]
        base_off = np.zeros(len(bases) + 1, dtype=np.int64)
        np.cumsum([b.n for b in bases], out=base_off[1:])
        base_cat = np.concatenate([b.values for b in bases]) if bases else np.zeros(0)
        base_cum = np.concatenate([b.cum for b in bases]) if bases else np.zeros(0)
        space = _thread_workspace(local)
        out_g, out_s = space.array("out_g", m), space.array("out_s", m)
        cum_g, cum_s = space.array("cum_g", m + n_groups), space.array("cum_s", m + n_windows)
        # Rank columns (base <=, previous <=) are read only where the pair exists, and the pass writes them there.
        g_rank = space.array("g_rank", (m, 2), np.int32)
        s_rank = space.array("s_rank", (m, 2), np.int32)
        n = vals.shape[0]
        sv, sg = kernels.value_order(vals, gid_small, (space.array("keys", n, np.uint64), space.array("sv", n),
                                                       space.array("sg", n, gid_small.dtype),
                                                       space.array("aux", n, np.uint32)))
        scratch = space.array("scratch", (2, n), np.int32)
        kernels.column_ranks(sv, sg, window_of, prev_g, prev_w, tgt_g, tgt_s, base_cat, base_off,
                             off_g, off_s, out_g, out_s, g_rank, s_rank, scratch)
        del sv, sg, scratch
        per_kind = []
        for out, cum, rank, off, prev, tgt, count in ((out_g, cum_g, g_rank, off_g, prev_g, tgt_g, n_groups),
                                                      (out_s, cum_s, s_rank, off_s, prev_w, tgt_s, n_windows)):
            # Profiles and own PSI proportions now, so the sorted values need not outlive this column.
            profiles, props = _segment_summaries(out, off, count, cum)
            res_d = np.full((2, count), np.nan)
            res_w = np.full((2, count), np.nan)
            res_c = np.zeros((2, count, stats.PSI_BINS), dtype=np.int64)
            kernels.segment_pairs(out, rank, off, cum, prev, tgt, base_cat, base_cum, base_off, stats.PSI_BINS,
                                  res_d, res_w, res_c)
            drift = [{} for _ in range(count)]
            sizes = np.diff(off)
            for row, kind, partner, partner_props in ((0, "base", tgt, base_props), (1, "prev", prev, props)):
                # a pair exists where the kernel computed it (both samples have values)
                paired = np.flatnonzero((sizes > 0) & (partner >= 0) & ~np.isnan(res_d[row]))
                if paired.shape[0] == 0:
                    continue
                psi = stats.psi_rows(res_c[row, paired] / sizes[paired, None],
                                     np.stack([partner_props[partner[i]] for i in paired]))
                for i, d, w, p in zip(paired.tolist(), res_d[row, paired].tolist(), res_w[row, paired].tolist(),
                                      psi.tolist(), strict=True):
                    drift[i][kind] = (d, w, p)
            per_kind.append((profiles, drift))
        del out_g, out_s, cum_g, cum_s, g_rank, s_rank
        return name, per_kind, ((rows_g - fin_g, inf_g), (rows_s - fin_s, inf_s))

    try:
        # One task per column: a few long tasks, so chunking them would leave a thread idle at the end.
        items = list(rows.numeric.items())
        done = list(pool.map(column, items)) if pool is not None else [column(item) for item in items]
    finally:
        if pool is not None:
            pool.shutdown()
    groups, star = summaries()
    for group in (*groups.values(), *star.values()):
        group.drift = {}
    for name, per_kind, nulls in done:
        for (profiles, drift), (null, inf), members, step in zip(per_kind, nulls, (groups, star), (1, n_versions),
                                                                  strict=True):
            for key, group in members.items():
                i = key // step
                group._profiles[name] = profiles[i]
                group.nulls[name] = int(null[i])
                group.nonfinite[name] = int(inf[i])
                for kind, value in drift[i].items():
                    group.drift[(name, kind)] = value
