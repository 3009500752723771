"""The local quality monitor's computation: processed inference rows + baseline rows -> metric rows.

Rows are grouped by window x model version (plus ``*`` for all versions) x slice. Each group's column
values are sorted once; every profile and drift statistic then works on those sorted arrays
(see :mod:`workloads.monitoring.stats`). With the compiled kernels, a numeric column is sorted once (one
``np.sort`` of packed (value, row) keys, :func:`workloads.monitoring.kernels.value_order`) and walked once
in value order (:func:`workloads.monitoring.kernels.column_ranks`): that walk writes every
group's sorted segment and, as plain counter reads, each value's ranks in the previous window's group and in
the baseline, so no drift pair searches; the numpy path (sort per group, search per pair) is the reference. Drift compares each window with the previous window of the same
model version (CONSECUTIVE) and with the baseline (BASELINE): the baseline rows of the same model version
when the baseline has any, else the whole baseline.

Slices: for every ``spec.slices`` column, every value of that column (the ``MAX_SLICE_VALUES`` most frequent)
is a slice; sliced rows compare with the baseline rows of the same slice value.
"""

from __future__ import annotations

import gc
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from workloads.monitoring import kernels, stats
from workloads.monitoring.categories import as_text, factorize
from workloads.monitoring.granularity import Granularity, parse_granularity, to_ns
from workloads.monitoring.schema import (
    ALL_MODELS,
    BASELINE,
    CONSECUTIVE,
    DRIFT_SCHEMA,
    INPUT,
    PROFILE_SCHEMA,
    TABLE_COLUMN,
    Rows,
)
from workloads.specs import MODEL_ID_COLUMN, TIMESTAMP_COLUMN, Column, ModelSpec

MAX_SLICE_VALUES = 20


def _workers() -> int:
    """Threads for sorting groups and for the drift pairs: ``MLOPS_MONITOR_THREADS``, default min(4, CPUs)."""
    configured = os.environ.get("MLOPS_MONITOR_THREADS", "")
    return max(1, int(configured)) if configured.isdigit() else min(4, os.cpu_count() or 1)


def _pool_map(pool: ThreadPoolExecutor | None, fn, items: list, workers: int) -> list:
    """``[fn(x) for x in items]``, on ``pool`` in a few contiguous chunks (one submit per chunk, not per item:
    ``ThreadPoolExecutor.map`` ignores ``chunksize``, and thousands of tiny submits cost more than they save)."""
    if pool is None or len(items) < 2:
        return [fn(x) for x in items]
    size = max(1, -(-len(items) // (2 * workers)))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return [y for part in pool.map(lambda chunk: [fn(x) for x in chunk], chunks) for y in part]


def monitored_columns(spec: ModelSpec) -> list[tuple[Column, bool]]:
    """(column, is_categorical) for every column the monitor profiles: features, prediction, label.

    For classification the prediction and label are class labels, so they are categorical.
    """
    classification = spec.problem_type == "classification"
    out = [(c, c.is_categorical) for c in spec.features]
    out.append((spec.prediction, classification or spec.prediction.is_categorical))
    out.append((spec.label, classification or spec.label.is_categorical))
    return out


class _Deferred:
    """A value computed on a thread of its own, awaited on first use (exceptions surface there)."""

    def __init__(self, compute, background: bool):
        self._value = None
        self._future = None
        if background:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-monitor-prepare")
            self._future = pool.submit(compute)
            pool.shutdown(wait=False)
        else:
            self._value = compute()

    def get(self):
        if self._future is not None:
            self._value, self._future = self._future.result(), None
        return self._value


class _Part(_Deferred):
    """Item ``index`` of a deferred tuple."""

    def __init__(self, whole: _Deferred, index: int):
        self._whole, self._index = whole, index

    def get(self):
        return self._whole.get()[self._index]


@dataclass
class Rowset:
    """Monitored columns of some rows as numpy arrays: numeric as float64 (NaN = null), categorical as codes."""

    numeric: dict[str, np.ndarray]
    _codes: dict[str, np.ndarray] | _Deferred
    version: np.ndarray  # int codes into MonitorData.versions
    ts_ns: np.ndarray | None
    n: int

    @property
    def codes(self) -> dict[str, np.ndarray]:
        """Categorical columns as codes into ``MonitorData.categories`` (-1 = null); may wait for :func:`prepare`'s
        background factorization."""
        if isinstance(self._codes, _Deferred):
            self._codes = self._codes.get()
        return self._codes

    def subset(self, mask: np.ndarray) -> Rowset:
        return Rowset({k: v[mask] for k, v in self.numeric.items()}, {k: v[mask] for k, v in self.codes.items()},
                      self.version[mask], None if self.ts_ns is None else self.ts_ns[mask], int(mask.sum()))


@dataclass
class MonitorData:
    """Input and baseline rows prepared once: shared category and model-version dictionaries."""

    spec: ModelSpec
    inputs: Rowset
    baseline: Rowset | None
    _categories: dict[str, np.ndarray] | _Deferred = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)

    @property
    def categories(self) -> dict[str, np.ndarray]:
        if isinstance(self._categories, _Deferred):
            self._categories = self._categories.get()
        return self._categories


def _numeric(series: pd.Series) -> np.ndarray:
    if series.dtype == np.float64:  # already numpy doubles (NaN = null): no copy (the monitor only reads it)
        return series.to_numpy()
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def prepare(frame: pd.DataFrame, baseline: pd.DataFrame | None, spec: ModelSpec) -> MonitorData:
    """Turn the processed table and baseline frames into :class:`MonitorData`.

    For large inputs the categorical columns are factorized on a thread of their own: the numeric columns,
    model versions and timestamps are ready on return, and the numeric pass runs while the category
    dictionaries are built (:attr:`Rowset.codes` waits for them).
    """
    columns = monitored_columns(spec)
    n_in = len(frame)
    base = baseline if baseline is not None and len(baseline) else None

    def column_of(source: pd.DataFrame, name: str) -> pd.Series:
        return source[name] if name in source else pd.Series([None] * len(source), dtype="object")

    numeric_in, numeric_b = {}, {}
    for col, categorical in columns:
        if not categorical:
            numeric_in[col.name] = _numeric(column_of(frame, col.name))
            if base is not None:
                numeric_b[col.name] = _numeric(column_of(base, col.name))

    def factorize_categorical():
        codes_in, codes_b, categories = {}, {}, {}
        for col, categorical in columns:
            if categorical:
                series_b = None if base is None else column_of(base, col.name)
                codes_in[col.name], in_base, categories[col.name] = factorize(column_of(frame, col.name), series_b)
                if series_b is not None:
                    codes_b[col.name] = in_base
        return codes_in, codes_b, categories

    factorized = _Deferred(factorize_categorical, background=n_in > 200_000 and _workers() > 1)
    versions_in = as_text(frame[MODEL_ID_COLUMN]) if MODEL_ID_COLUMN in frame else pd.Series(
        [None] * n_in, dtype="string")
    versions_b = None
    if base is not None:
        versions_b = as_text(base[MODEL_ID_COLUMN]) if MODEL_ID_COLUMN in base else pd.Series(
            [None] * len(base), dtype="string")
    vcodes_in, vcodes_b, vuniques = factorize(versions_in, versions_b, fill="unknown")
    ts = to_ns(frame[TIMESTAMP_COLUMN]) if n_in else np.zeros(0, dtype=np.int64)
    inputs = Rowset(numeric_in, _Part(factorized, 0), vcodes_in, ts, n_in)
    base_rows = None
    if base is not None:
        base_rows = Rowset(numeric_b, _Part(factorized, 1), vcodes_b, None, len(base))
    return MonitorData(spec, inputs, base_rows, _Part(factorized, 2), [str(v) for v in vuniques])


# ------------------------------------------------------------------------------------------- group summaries
@dataclass
class GroupStats:
    """One group's sorted numeric samples, categorical counts, null counts and quality metrics."""

    rows: int
    sorted: dict[str, stats.Sorted]
    nulls: dict[str, int]
    nonfinite: dict[str, int]
    counts: dict[str, np.ndarray]
    quality: dict
    labelled: int
    _profiles: dict = field(default_factory=dict)
    # (column, "base" | "prev") -> (ks statistic, wasserstein, psi) from the one-pass column kernel; None when
    # the pairs are computed one by one (numpy path)
    drift: dict | None = None

    def profile(self, name: str) -> stats.NumericProfile:
        if name not in self._profiles:
            self._profiles[name] = stats.numeric_profile(self.sorted[name])
        return self._profiles[name]


def _quality(spec: ModelSpec, data: MonitorData, rows: Rowset, idx: slice, perm: np.ndarray) -> tuple[dict, int]:
    label, pred = spec.label.name, spec.prediction.name
    if spec.problem_type == "classification":
        y, p = rows.codes[label][perm[idx]], rows.codes[pred][perm[idx]]
        ok = (y >= 0) & (p >= 0)
        if not ok.any():
            return {}, 0
        return stats.classification_quality(y[ok], p[ok]), int(ok.sum())
    y, p = rows.numeric[label][perm[idx]], rows.numeric[pred][perm[idx]]
    ok = np.isfinite(y) & np.isfinite(p)
    if not ok.any():
        return {}, 0
    return stats.regression_quality(y[ok], p[ok]), int(ok.sum())


def _order_by_group(gid: np.ndarray, n_groups: int) -> np.ndarray:
    """Row positions ordered by group id, stably (numpy radix-sorts 16-bit keys in O(n))."""
    if n_groups <= np.iinfo(np.uint16).max:
        return np.argsort(gid.astype(np.uint16), kind="stable")
    return np.argsort(gid, kind="stable")


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` by hashing (O(n)) and sorting only the few distinct values."""
    codes, uniques = pd.factorize(values, sort=False)
    uniques = np.asarray(uniques)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return uniques[order], rank[codes]


def _windows(gran: Granularity, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The starts (epoch ns, increasing) of the windows holding rows, and each row's index into them.

    Inference tables are appended in time order: then each window is one run of rows, found by a binary search
    per window edge instead of a division per row."""
    size = gran.fixed_ns
    n = ts_ns.shape[0]
    if size is not None and n and bool(np.all(ts_ns[1:] >= ts_ns[:-1])):
        first, last = (int(x) for x in gran.floor(ts_ns[[0, -1]]))
        edges = np.arange(first, last + size, size, dtype=np.int64)
        bounds = np.concatenate([[0], np.searchsorted(ts_ns, edges[1:], side="left"), [n]])
        counts = np.diff(bounds)
        held = counts > 0
        return edges[held], np.repeat(np.arange(int(held.sum()), dtype=np.int64), counts[held])
    return _unique_inverse(gran.floor(ts_ns))


def _summaries(data: MonitorData, rows: Rowset, gid: np.ndarray, n_groups: int,
               spans: tuple[int, ...] = (1,), shared: bool = False, numeric: bool = True,
               categorical: bool = True) -> list[dict[int, GroupStats]]:
    """Stats for every non-empty group id, per span: with span ``k`` > 1, for runs of ``k`` adjacent ids.

    Rows are ordered by group once; each group's columns are then sorted (on a small thread pool for large
    inputs: numpy's sort releases the GIL). ``numeric`` / ``categorical`` False leave out the numeric columns /
    the categorical columns and quality metrics (see :func:`_merged`).
    """
    spec = data.spec
    perm = _order_by_group(gid, n_groups)
    bounds = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(gid, minlength=n_groups), out=bounds[1:])
    jobs = []
    for k, span in enumerate(spans):
        for g in range(0, n_groups, span):
            lo, hi = int(bounds[g]), int(bounds[min(g + span, n_groups)])
            if hi > lo:
                jobs.append((k, g, lo, hi))
    workers = _workers()
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 and rows.n > 200_000 else None

    def each(fn):
        return _pool_map(pool, fn, jobs, workers)

    # One column ordered by group at a time (memory stays near one column's copy, not the whole table's).
    sorted_cols, nulls, nonfinite, counts = {}, {}, {}, {}
    try:
        for name, values in (rows.numeric.items() if numeric else ()):
            ordered = values[perm]

            def summarise(job, ordered=ordered):
                part = ordered[job[2]:job[3]]
                return stats.Sorted.of(part, shared=shared), int(np.count_nonzero(np.isinf(part)))

            done = each(summarise)
            sorted_cols[name] = [d[0] for d in done]
            nonfinite[name] = [d[1] for d in done]
            nulls[name] = [(job[3] - job[2]) - d[0].n for job, d in zip(jobs, done, strict=True)]
            del ordered
        for name, codes in (rows.codes.items() if categorical else ()):
            ordered = codes[perm]
            size = len(data.categories[name])
            parts = [ordered[lo:hi] for _, _, lo, hi in jobs]
            counts[name] = [np.bincount(p[p >= 0], minlength=size) for p in parts]
            nulls[name] = [p.shape[0] - int(c.sum()) for p, c in zip(parts, counts[name], strict=True)]
            del ordered
        quality = each(lambda job: _quality(spec, data, rows, slice(job[2], job[3]), perm)) if categorical else [
            ({}, 0)] * len(jobs)
    finally:
        if pool is not None:
            pool.shutdown()
    built = []
    for i, (_, _, lo, hi) in enumerate(jobs):
        built.append(GroupStats(
            hi - lo, {n: v[i] for n, v in sorted_cols.items()},
            {n: v[i] for n, v in nulls.items()}, {n: v[i] for n, v in nonfinite.items()},
            {n: v[i] for n, v in counts.items()}, quality[i][0], quality[i][1]))
    out: list[dict[int, GroupStats]] = [{} for _ in spans]
    for (k, g, _, _), stats_ in zip(jobs, built, strict=True):
        out[k][g] = stats_
    return out


def _merged(numeric: list[dict[int, GroupStats]], categorical: list[dict[int, GroupStats]]
            ) -> list[dict[int, GroupStats]]:
    """The groups of a ``categorical=False`` summary completed with those of a ``numeric=False`` one."""
    for by_id, others in zip(numeric, categorical, strict=True):
        for key, group in by_id.items():
            other = others[key]
            group.counts.update(other.counts)
            group.nulls.update(other.nulls)
            group.quality, group.labelled = other.quality, other.labelled
    return numeric


_LEVELS = np.array([*stats.QUANTILE_LEVELS, 0.5])


def _segment_summaries(out: np.ndarray, off: np.ndarray, count: int, cum: np.ndarray
                       ) -> tuple[list[stats.NumericProfile], list[np.ndarray | None]]:
    """:func:`stats.numeric_profile` and the own PSI bin proportions of every sorted segment, with their prefix
    sums written to ``cum``, in one compiled call."""
    res = np.zeros((count, 4))
    quantiles = np.zeros((count, _LEVELS.shape[0]))
    distinct = np.zeros(count, dtype=np.int64)
    own = np.zeros((count, stats.PSI_BINS), dtype=np.int64)
    kernels.segment_summaries(out, off, _LEVELS, stats.PSI_BINS, res, quantiles, distinct, own, cum)
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
                                             qs[-1], int(distinct[i])))
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


def _numeric_pass(data: MonitorData, rows: Rowset, gid: np.ndarray, wi: np.ndarray, n_versions: int,
                  prev_w: np.ndarray, targets: list, baseline_all: GroupStats | None,
                  summaries) -> None:
    """Numeric columns of every window x version group and window ('*') group, with their drift against the
    previous window and the baseline, in one ordered pass per column (see :func:`kernels.column_ranks`):
    one argsort of the column replaces the per-group sorts, and every rank lookup becomes a counter read.
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
    prev_g = np.where(prev_w[g_ids // n_versions] >= 0, prev_w[g_ids // n_versions] * n_versions
                      + g_ids % n_versions, -1)
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
    workers = _workers()
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 and rows.n > 200_000 else None

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
        base_props = [stats._psi_props(b) if b.n else None for b in bases]
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


# ----------------------------------------------------------------------------------------------- emitting rows
def _window(start_ns: int, end_ns: int) -> dict:
    return {"start": pd.Timestamp(start_ns, unit="ns", tz="UTC").to_pydatetime(),
            "end": pd.Timestamp(end_ns, unit="ns", tz="UTC").to_pydatetime()}


def _emit_profile(out: Rows, data: MonitorData, g: GroupStats, base: dict) -> None:
    spec = data.spec
    out.add(**base, column_name=TABLE_COLUMN, data_type="table", count=g.rows, num_nulls=0, num_nan=0,
            **g.quality)
    for col, categorical in monitored_columns(spec):
        name = col.name
        nulls = g.nulls[name]
        if categorical:
            counts = g.counts[name]
            present = int(counts.sum())
            distinct = int(np.count_nonzero(counts))
            top = np.argsort(-counts, kind="stable")[: stats.FREQUENT_ITEMS]
            items = [{"item": str(data.categories[name][i]), "count": int(counts[i])} for i in top if counts[i] > 0]
            out.add(**base, column_name=name, data_type=col.type, count=present, num_nulls=nulls, num_nan=0,
                    distinct_count=distinct, percent_null=_pct(nulls, present + nulls),
                    percent_distinct=_pct(distinct, present), frequent_items=items)
        else:
            p = g.profile(name)
            out.add(**base, column_name=name, data_type=col.type, count=p.count, num_nulls=nulls,
                    num_nan=g.nonfinite[name], avg=p.avg, stddev=p.stddev, min=p.min, max=p.max,
                    quantiles=p.quantiles, median=p.median, distinct_count=p.distinct_count,
                    percent_null=_pct(nulls, p.count + nulls), percent_distinct=_pct(p.distinct_count, p.count))


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


@dataclass
class _Pending:
    """Drift rows whose numeric statistics and p-values are computed together once every pair is known:
    numeric pairs run on a small thread pool (the compiled kernel releases the GIL), p-values in one
    vectorised call each."""

    rows: list = field(default_factory=list)
    numeric: list = field(default_factory=list)
    categorical: dict = field(default_factory=dict)  # column -> [(row, counts a, counts b)]
    ks: list = field(default_factory=list)
    chi: list = field(default_factory=list)

    def _categorical(self) -> None:
        """Chi-squared statistics and distances of every categorical pair, vectorised per column."""
        for pairs in self.categorical.values():
            valid, stat, dof, tv, linf, js = stats.categorical_drift_rows(np.stack([p[1] for p in pairs]),
                                                                          np.stack([p[2] for p in pairs]))
            for (row, _, _), ok, s, k, t, li, j in zip(pairs, valid.tolist(), stat.tolist(), dof.tolist(),
                                                      tv.tolist(), linf.tolist(), js.tolist(), strict=True):
                if ok:
                    test = {"statistic": s, "pvalue": None}
                    self.chi.append((test, s, k))
                    row.update(chi_squared_test=test, tv_distance=t, l_infinity_distance=li, js_distance=j)

    def resolve(self, exact: bool, out: Rows) -> None:
        def run(task):
            row, sa, sb, b_le = task
            return row, sa, sb, stats.numeric_drift(sa, sb, b_le=b_le, pvalue=False)

        tasks = self.numeric
        workers = _workers()
        if stats.USE_KERNEL and workers > 1 and sum(t[1].n for t in tasks) > 200_000:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                done = _pool_map(pool, run, tasks, workers)
        else:
            done = [run(t) for t in tasks]
        for row, sa, sb, drift in done:
            if drift is not None:
                test = {"statistic": drift.ks_statistic, "pvalue": None}
                self.ks.append((test, drift.ks_statistic, sa.n, sb.n))
                row.update(ks_test=test, wasserstein_distance=drift.wasserstein_distance,
                           population_stability_index=drift.population_stability_index)
        if self.ks:
            values = stats.ks_pvalues([k[1] for k in self.ks], [k[2] for k in self.ks], [k[3] for k in self.ks],
                                      exact=exact, workers=workers)
            for (test, *_), p in zip(self.ks, values, strict=True):
                test["pvalue"] = float(p)
        self._categorical()
        if self.chi:
            values = stats.chi2_pvalues([c[1] for c in self.chi], [c[2] for c in self.chi])
            for (test, *_), p in zip(self.chi, values, strict=True):
                test["pvalue"] = float(p)
        for row in self.rows:
            out.add(**row)
        self.rows.clear()
        self.numeric.clear()
        self.ks.clear()
        self.chi.clear()
        self.categorical.clear()


def _emit_drift(data: MonitorData, a: GroupStats, b: GroupStats, base: dict, pending: _Pending,
                b_le: dict[str, np.ndarray] | None = None, kind: str = "") -> None:
    pending.rows.append({**base, "column_name": TABLE_COLUMN, "data_type": "table",
                         "count_delta": float(a.rows - b.rows)})
    for col, categorical in monitored_columns(data.spec):
        name = col.name
        if categorical:
            ca, cb = a.counts[name], b.counts[name]
            na, nb = int(ca.sum()), int(cb.sum())
            fields = {"count_delta": float(na - nb),
                      "percent_null_delta": _delta(_pct(a.nulls[name], a.rows), _pct(b.nulls[name], b.rows))}
            row = {**base, "column_name": name, "data_type": col.type, **fields}
            pending.rows.append(row)
            pending.categorical.setdefault(name, []).append((row, ca, cb))
        else:
            na, nb = a.profile(name).count, b.profile(name).count
            row = {**base, "column_name": name, "data_type": col.type, "count_delta": float(na - nb),
                   "avg_delta": _delta(a.profile(name).avg, b.profile(name).avg),
                   "percent_null_delta": _delta(_pct(a.nulls[name], a.rows), _pct(b.nulls[name], b.rows))}
            pending.rows.append(row)
            if a.drift is None:
                pending.numeric.append((row, a.sorted[name], b.sorted[name], None if b_le is None else b_le.get(name)))
            elif (name, kind) in a.drift:
                d, w, psi = a.drift[(name, kind)]
                test = {"statistic": d, "pvalue": None}
                pending.ks.append((test, d, na, nb))
                row.update(ks_test=test, wasserstein_distance=w, population_stability_index=psi)


def _delta(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else x - y


# ------------------------------------------------------------------------------------------------ entry points
@dataclass
class MetricTables:
    profile: pa.Table
    drift: pa.Table


def compute_metrics(data: MonitorData, granularity: str | Granularity, windows: set[int] | None = None,
                    exact_pvalues: bool = False, baseline_window: tuple[int, int] | None = None) -> MetricTables:
    """Profile and drift rows for one granularity.

    Args:
        data: prepared input and baseline rows.
        granularity: e.g. ``"1 day"``.
        windows: window starts (epoch ns) to emit; ``None`` emits every window. The input must also hold the
            rows of each emitted window's previous window for CONSECUTIVE drift.
        exact_pvalues: KS p-values exactly as scipy's ``ks_2samp`` instead of the fast method.
        baseline_window: (start, end) epoch ns stamped on BASELINE profile rows; default: the span of the
            input's windows.
    """
    # The metric rows are thousands of small dicts: without this, they trigger full collections that scan the
    # whole heap (the input frames included) - up to ~0.1 s per 1M-row refresh. Nothing here makes cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _compute_metrics(data, granularity, windows, exact_pvalues, baseline_window)
    finally:
        if collecting:
            gc.enable()


def _compute_metrics(data: MonitorData, granularity: str | Granularity, windows: set[int] | None,
                     exact_pvalues: bool, baseline_window: tuple[int, int] | None) -> MetricTables:
    gran = granularity if isinstance(granularity, Granularity) else parse_granularity(granularity)
    profile, drift, pending = Rows(PROFILE_SCHEMA), Rows(DRIFT_SCHEMA), _Pending()
    _compute_slice(data, data.inputs, data.baseline, gran, windows, pending, None, None, profile, drift,
                   baseline_window)
    for key in data.spec.slices:
        codes = data.inputs.codes.get(key)
        if codes is None:
            continue  # numeric slice columns are not sliced (their values are not categories)
        present = np.bincount(codes[codes >= 0], minlength=len(data.categories[key]))
        for code in np.argsort(-present, kind="stable")[:MAX_SLICE_VALUES]:
            if present[code] == 0:
                break
            rows = data.inputs.subset(codes == code)
            base = None
            if data.baseline is not None:
                base = data.baseline.subset(data.baseline.codes[key] == code)
            _compute_slice(data, rows, base, gran, windows, pending, key, str(data.categories[key][code]),
                           profile, drift, baseline_window)
    pending.resolve(exact_pvalues, drift)
    return MetricTables(profile.to_arrow(), drift.to_arrow())


def _compute_slice(data: MonitorData, rows: Rowset, base_rows: Rowset | None, gran: Granularity,
                   windows: set[int] | None, pending: _Pending, slice_key, slice_value, profile: Rows, drift: Rows,
                   baseline_window: tuple[int, int] | None = None) -> None:
    if rows.n == 0:
        return
    n_versions = max(len(data.versions), 1)
    window_starts, wi = _windows(gran, rows.ts_ns)
    n_windows = window_starts.shape[0]
    ends = gran.end(window_starts)
    prev_starts = gran.shift(window_starts, -1)
    # Version groups of one window are adjacent ids, so a span of n_versions ids is the window's '*' group.
    gid = wi * n_versions + rows.version
    one_pass = stats.USE_KERNEL
    # With the compiled pass, the categorical and quality summaries (mostly GIL-bound) run on a thread of
    # their own while the numeric columns are sorted and walked (in nogil kernels).
    background = ThreadPoolExecutor(max_workers=1) if one_pass and rows.n > 200_000 and _workers() > 1 else None
    try:
        if background is not None:
            future = background.submit(_summaries, data, rows, gid, n_windows * n_versions, (1, n_versions),
                                       False, False)
            summaries = future.result
        else:
            summed = _summaries(data, rows, gid, n_windows * n_versions, spans=(1, n_versions),
                                numeric=not one_pass)
            summaries = lambda: summed
        baseline_groups: dict[int, GroupStats] = {}
        baseline_all = None
        complete_baseline = None
        if base_rows is not None and base_rows.n:
            present = np.flatnonzero(np.bincount(base_rows.version, minlength=n_versions))
            # one version's rows are the whole baseline: summarise them once
            spans = (1,) if present.shape[0] == 1 else (1, n_versions)
            if background is not None:  # categorical columns and quality with the input's, off this thread
                later = background.submit(_summaries, data, base_rows, base_rows.version, n_versions, spans, True,
                                          False)
                summed_base = _summaries(data, base_rows, base_rows.version, n_versions, spans, shared=True,
                                         categorical=False)
                complete_baseline = lambda: _merged(summed_base, later.result())
            else:
                summed_base = _summaries(data, base_rows, base_rows.version, n_versions, spans, shared=True)
            baseline_groups = summed_base[0]
            baseline_all = baseline_groups[int(present[0])] if len(spans) == 1 else summed_base[1][0]
        index_of = {int(s): i for i, s in enumerate(window_starts)}
        if one_pass:
            prev_w = np.array([index_of.get(int(p), -1) for p in prev_starts], dtype=np.int64)
            targets = [baseline_groups.get(v, baseline_all) for v in range(n_versions)]
            _numeric_pass(data, rows, gid, wi, n_versions, prev_w, targets, baseline_all, summaries)
        groups, star = summaries()
        if complete_baseline is not None:
            complete_baseline()
    finally:
        if background is not None:
            background.shutdown()
    common = {"granularity": gran.text, "slice_key": slice_key, "slice_value": slice_value}
    consecutive, against_baseline = [], []
    for w in range(n_windows):
        start = int(window_starts[w])
        if windows is not None and start not in windows:
            continue
        win = _window(start, int(ends[w]))
        prev = index_of.get(int(prev_starts[w]))
        prev_win = None if prev is None else _window(int(window_starts[prev]), start)
        members = [(data.versions[v], groups.get(w * n_versions + v),
                    None if prev is None else groups.get(prev * n_versions + v), baseline_groups.get(v))
                   for v in range(n_versions)]
        members.append((ALL_MODELS, star.get(w * n_versions), None if prev is None else star.get(prev * n_versions),
                        baseline_all))
        for version, g, g_prev, g_base in members:
            if g is None:
                continue
            keys = {**common, "window": win, MODEL_ID_COLUMN: version}
            _emit_profile(profile, data, g, {**keys, "log_type": INPUT})
            if g_prev is not None:
                consecutive.append((g, g_prev, {**keys, "window_cmp": prev_win, "drift_type": CONSECUTIVE}))
            target = g_base if g_base is not None else baseline_all
            if target is not None:
                against_baseline.append((g, target, {**keys, "window_cmp": None, "drift_type": BASELINE}))
    for g, g_prev, keys in consecutive:
        _emit_drift(data, g, g_prev, keys, pending, kind="prev")
    # Without the compiled kernel, every window compared with the same baseline sample is located in it by
    # one searchsorted call.
    by_target: dict[int, list] = {}
    for item in against_baseline:
        by_target.setdefault(id(item[1]), []).append(item)
    numeric = [c.name for c, categorical in monitored_columns(data.spec) if not categorical]
    for items in by_target.values():
        target = items[0][1]
        located = {} if stats.USE_KERNEL else {
            name: stats.counts_in(target.sorted[name], [g.sorted[name] for g, _, _ in items]) for name in numeric}
        for i, (g, _, keys) in enumerate(items):
            _emit_drift(data, g, target, keys, pending,
                        {name: located[name][i] for name in located} or None, kind="base")
    if baseline_all is not None and (windows is None or windows):
        span = _window(*(baseline_window or (int(window_starts[0]), int(ends[-1]))))
        keys = {**common, "window": span, "log_type": BASELINE}
        for v, g in baseline_groups.items():
            _emit_profile(profile, data, g, {**keys, MODEL_ID_COLUMN: data.versions[v]})
        _emit_profile(profile, data, baseline_all, {**keys, MODEL_ID_COLUMN: ALL_MODELS})
