"""Per-group summaries: windows and group ids of the rows, categorical counts, quality metrics and (for the
numpy path and the baseline) sorted numeric samples of every window x version group and window group."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workloads.monitoring import stats
from workloads.monitoring.granularity import Granularity
from workloads.monitoring.inputs import MonitorData, Rowset
from workloads.monitoring.parallel import parallel_rows, pool_map, worker_count
from workloads.specs import ModelSpec


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
    non_null: list[str] | None = None  # monitored columns with a non-null value (metric_rows.non_null_columns)

    def profile(self, name: str) -> stats.NumericProfile:
        if name not in self._profiles:
            self._profiles[name] = stats.numeric_profile(self.sorted[name])
        return self._profiles[name]


def _in_label_codes(data: MonitorData, label: str, pred: str) -> np.ndarray:
    """Prediction codes translated into the label column's dictionary (each column numbers its own categories in
    order of first appearance, so code 0 of one is not code 0 of the other): index ``code + 1`` (null -1 -> -1);
    a predicted class the labels never show gets a code no label has."""
    labels = {str(v): i for i, v in enumerate(np.asarray(data.categories[label]).tolist())}
    predicted = np.asarray(data.categories[pred]).tolist()
    unseen = len(labels)
    return np.array([-1, *(labels.get(str(v), unseen + j) for j, v in enumerate(predicted))], dtype=np.int64)


def _quality(spec: ModelSpec, data: MonitorData, rows: Rowset, idx: slice, perm: np.ndarray) -> tuple[dict, int]:
    label, pred = spec.label.name, spec.prediction.name
    if spec.problem_type == "classification":
        y, p = rows.codes[label][perm[idx]], _in_label_codes(data, label, pred)[rows.codes[pred][perm[idx]] + 1]
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


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` by hashing (O(n)) and sorting only the few distinct values."""
    codes, uniques = pd.factorize(values, sort=False)
    uniques = np.asarray(uniques)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return uniques[order], rank[codes]


def window_index(gran: Granularity, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    return unique_inverse(gran.floor(ts_ns))


def group_summaries(data: MonitorData, rows: Rowset, gid: np.ndarray, n_groups: int,
               spans: tuple[int, ...] = (1,), shared: bool = False, numeric: bool = True,
               categorical: bool = True) -> list[dict[int, GroupStats]]:
    """Stats for every non-empty group id, per span: with span ``k`` > 1, for runs of ``k`` adjacent ids.

    Rows are ordered by group once; each group's columns are then sorted (on a small thread pool for large
    inputs: numpy's sort releases the GIL). ``numeric`` / ``categorical`` False leave out the numeric columns /
    the categorical columns and quality metrics (see :func:`complete_summaries`).
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
    workers = worker_count()
    pool = ThreadPoolExecutor(max_workers=workers) if parallel_rows(rows.n) else None

    def each(fn):
        return pool_map(pool, fn, jobs, workers)

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


def complete_summaries(numeric: list[dict[int, GroupStats]], categorical: list[dict[int, GroupStats]]
            ) -> list[dict[int, GroupStats]]:
    """The groups of a ``categorical=False`` summary completed with those of a ``numeric=False`` one."""
    for by_id, others in zip(numeric, categorical, strict=True):
        for key, group in by_id.items():
            other = others[key]
            group.counts.update(other.counts)
            group.nulls.update(other.nulls)
            group.quality, group.labelled = other.quality, other.labelled
    return numeric
