"""Where data leaves the monitor: profile and drift rows of the Databricks metric tables, built from the group
summaries (drift statistics and p-values resolved together once every pair is known)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workloads.monitoring import stats
from workloads.monitoring.groups import GroupStats
from workloads.monitoring.inputs import MonitorData, monitored_columns
from workloads.monitoring.parallel import parallel_rows, pool_map, worker_count
from workloads.monitoring.schema import TABLE_COLUMN, Rows


def window_struct(start_ns: int, end_ns: int) -> dict:
    return {"start": pd.Timestamp(start_ns, unit="ns", tz="UTC").to_pydatetime(),
            "end": pd.Timestamp(end_ns, unit="ns", tz="UTC").to_pydatetime()}


def emit_profile(out: Rows, data: MonitorData, g: GroupStats, base: dict) -> None:
    """The profile rows of one group: its ``:table`` row, then one row per monitored column (see the null
    conventions in :mod:`workloads.monitoring.schema`)."""
    spec = data.spec
    out.add(**base, column_name=TABLE_COLUMN, count=g.rows, non_null_columns=non_null_columns(data, g), **g.quality)
    for col, categorical in monitored_columns(spec):
        name = col.name
        nulls = g.nulls[name]
        if categorical:
            counts = g.counts[name]
            present = int(counts.sum())
            distinct = int(np.count_nonzero(counts))
            top = most_frequent(data, name, counts)[: stats.FREQUENT_ITEMS]
            items = [{"item": str(data.categories[name][i]), "count": int(counts[i])} for i in top if counts[i] > 0]
            lengths = {}
            if col.type == "string" and present:
                size = category_lengths(data, name)
                held = counts > 0
                lengths = {"min_length": float(size[held].min()), "max_length": float(size[held].max()),
                           "avg_length": float(counts @ size) / present}
            out.add(**base, column_name=name, data_type=col.type, count=present, num_nulls=nulls,
                    distinct_count=distinct, percent_null=_pct(nulls, present + nulls),
                    percent_distinct=_pct(distinct, present), frequent_items=items, **lengths)
        else:
            p = g.profile(name)
            rows = p.count + nulls
            out.add(**base, column_name=name, data_type=col.type, count=p.count, num_nulls=nulls,
                    num_nan=0, avg=p.avg, stddev=p.stddev, min=p.min, max=p.max, quantiles=p.quantiles,
                    median=p.median, distinct_count=p.distinct_count, num_zeros=p.zeros,
                    percent_nan=_pct(0, rows), percent_null=_pct(nulls, rows), percent_zeros=_pct(p.zeros, rows),
                    percent_distinct=_pct(p.distinct_count, p.count))


def non_null_columns(data: MonitorData, g: GroupStats) -> list[str]:
    """The monitored columns holding at least one non-null value in the group (an infinite value is not null);
    computed once per group (a baseline group is compared with every window)."""
    if g.non_null is not None:
        return g.non_null
    out = []
    for col, categorical in monitored_columns(data.spec):
        name = col.name
        held = int(g.counts[name].sum()) if categorical else g.profile(name).count + g.nonfinite.get(name, 0)
        if held:
            out.append(name)
    g.non_null = out
    return out


def most_frequent(data: MonitorData, name: str, counts: np.ndarray) -> np.ndarray:
    """Category codes of a column by count, highest first, ties by the category's text: the same order whichever
    rows were read (the category dictionary's own order depends on them)."""
    ranks = data.category_ranks.get(name)
    if ranks is None:
        text = np.array([str(v) for v in data.categories[name]], dtype=object)
        ranks = data.category_ranks[name] = np.argsort(np.argsort(text, kind="stable"), kind="stable")
    return np.lexsort((ranks, -counts))


def category_lengths(data: MonitorData, name: str) -> np.ndarray:
    """Length in characters of each category of a string column (computed once per column)."""
    lengths = data.category_lengths.get(name)
    if lengths is None:
        lengths = data.category_lengths[name] = np.fromiter(
            (len(str(v)) for v in data.categories[name]), dtype=np.float64, count=len(data.categories[name]))
    return lengths


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


@dataclass
class PendingDrift:
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
        workers = worker_count()
        if stats.USE_KERNEL and parallel_rows(sum(t[1].n for t in tasks)):
            with ThreadPoolExecutor(max_workers=workers) as pool:
                done = pool_map(pool, run, tasks, workers)
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


def emit_drift(data: MonitorData, a: GroupStats, b: GroupStats, base: dict, pending: PendingDrift,
                b_le: dict[str, np.ndarray] | None = None, kind: str = "") -> None:
    """The drift rows of group ``a`` against ``b``: every delta is ``a``'s value minus ``b``'s."""
    cols_a, cols_b = set(non_null_columns(data, a)), set(non_null_columns(data, b))
    pending.rows.append({**base, "column_name": TABLE_COLUMN, "count_delta": a.rows - b.rows,
                         "non_null_columns_delta": {"added": len(cols_a - cols_b), "missing": len(cols_b - cols_a)}})
    for col, categorical in monitored_columns(data.spec):
        name = col.name
        null_delta = _delta(_pct(a.nulls[name], a.rows), _pct(b.nulls[name], b.rows))
        if categorical:
            ca, cb = a.counts[name], b.counts[name]
            na, nb = int(ca.sum()), int(cb.sum())
            distinct_delta = _delta(_pct(int(np.count_nonzero(ca)), na), _pct(int(np.count_nonzero(cb)), nb))
            row = {**base, "column_name": name, "data_type": col.type, "count_delta": na - nb,
                   "percent_null_delta": null_delta, "percent_distinct_delta": distinct_delta}
            pending.rows.append(row)
            pending.categorical.setdefault(name, []).append((row, ca, cb))
        else:
            prof_a, prof_b = a.profile(name), b.profile(name)
            na, nb = prof_a.count, prof_b.count
            row = {**base, "column_name": name, "data_type": col.type, "count_delta": na - nb,
                   "avg_delta": _delta(prof_a.avg, prof_b.avg), "percent_null_delta": null_delta,
                   "percent_zeros_delta": _delta(_pct(prof_a.zeros, a.rows), _pct(prof_b.zeros, b.rows)),
                   "percent_distinct_delta": _delta(_pct(prof_a.distinct_count, na), _pct(prof_b.distinct_count, nb))}
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
