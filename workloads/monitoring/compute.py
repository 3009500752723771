"""The local quality monitor's computation: processed inference rows + baseline rows -> metric rows.

Rows are grouped by window x model version (plus ``*`` for all versions) x slice. Each group's column
values are sorted once; every profile and drift statistic then works on those sorted arrays
(see :mod:`workloads.monitoring.stats`); with the compiled kernels, each numeric column is sorted and walked
once for all groups (:mod:`workloads.monitoring.numeric_pass`); the numpy path (sort per group, search per
pair) is the reference. Drift compares each window with the previous window of the same model version
(CONSECUTIVE) and with the baseline (BASELINE): the baseline rows of the same model version when the baseline
has any, else the whole baseline.

Data enters in :mod:`~workloads.monitoring.inputs`, is summarised per group in
:mod:`~workloads.monitoring.groups` and :mod:`~workloads.monitoring.numeric_pass`, and leaves as metric rows
from :mod:`~workloads.monitoring.metric_rows`; this module runs them in order for each granularity and slice.

Slices: for every ``spec.slices`` column, every value of that column (the ``MAX_SLICE_VALUES`` most frequent)
is a slice; sliced rows compare with the baseline rows of the same slice value.
"""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from workloads.monitoring import stats
from workloads.monitoring.granularity import Granularity, parse_granularity
from workloads.monitoring.groups import GroupStats, complete_summaries, group_summaries, window_index
from workloads.monitoring.inputs import MonitorData, Rowset, monitored_columns, prepare
from workloads.monitoring.metric_rows import (
    PendingDrift,
    emit_drift,
    emit_profile,
    most_frequent,
    window_struct,
)
from workloads.monitoring.numeric_pass import numeric_pass
from workloads.monitoring.parallel import parallel_rows
from workloads.monitoring.schema import (
    ALL_MODELS,
    BASELINE,
    CONSECUTIVE,
    DRIFT_SCHEMA,
    INPUT,
    PROFILE_SCHEMA,
    Rows,
)
from workloads.specs import MODEL_ID_COLUMN

__all__ = ["MAX_SLICE_VALUES", "MetricTables", "compute_metrics", "monitored_columns", "prepare"]

MAX_SLICE_VALUES = 20


@dataclass
class MetricTables:
    profile: pa.Table
    drift: pa.Table


def compute_metrics(data: MonitorData, granularity: str | Granularity, windows: set[int] | None = None,
                    exact_pvalues: bool = False, baseline_profile: bool = True, monitor_version: int = 0,
                    logging_table_commit_version: int | None = None) -> MetricTables:
    """Profile and drift rows for one granularity.

    Args:
        data: prepared input and baseline rows.
        granularity: e.g. ``"1 day"``.
        windows: window starts (epoch ns) to emit; ``None`` emits every window. The input must also hold the
            rows of each emitted window's previous window for CONSECUTIVE drift.
        exact_pvalues: KS p-values exactly as scipy's ``ks_2samp`` instead of the fast method.
        baseline_profile: emit the BASELINE profile rows. They belong to no window or granularity (both null, as
            Databricks writes them), so a refresh of several granularities emits them once.
        monitor_version: the monitor configuration's version, stamped on every row.
        logging_table_commit_version: the Delta version of the monitored table the rows were computed from,
            stamped on every profile row.
    """
    # The metric rows are thousands of small dicts: without this, they trigger full collections that scan the
    # whole heap (the input frames included) - up to ~0.1 s per 1M-row refresh. Nothing here makes cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        stamps = {"monitor_version": monitor_version, "logging_table_commit_version": logging_table_commit_version}
        return _compute_metrics(data, granularity, windows, exact_pvalues, baseline_profile, stamps)
    finally:
        if collecting:
            gc.enable()


def _compute_metrics(data: MonitorData, granularity: str | Granularity, windows: set[int] | None,
                     exact_pvalues: bool, baseline_profile: bool, stamps: dict) -> MetricTables:
    gran = granularity if isinstance(granularity, Granularity) else parse_granularity(granularity)
    profile, drift, pending = Rows(PROFILE_SCHEMA), Rows(DRIFT_SCHEMA), PendingDrift()
    _compute_slice(data, data.inputs, data.baseline, gran, windows, pending, None, None, profile, drift,
                   baseline_profile, stamps)
    for key in data.spec.slices:
        codes = data.inputs.codes.get(key)
        if codes is None:
            continue  # numeric slice columns are not sliced (their values are not categories)
        present = np.bincount(codes[codes >= 0], minlength=len(data.categories[key]))
        for code in most_frequent(data, key, present)[:MAX_SLICE_VALUES]:
            if present[code] == 0:
                break
            rows = data.inputs.subset(codes == code)
            base = None
            if data.baseline is not None:
                base = data.baseline.subset(data.baseline.codes[key] == code)
            _compute_slice(data, rows, base, gran, windows, pending, key, str(data.categories[key][code]),
                           profile, drift, baseline_profile, stamps)
    pending.resolve(exact_pvalues, drift)
    return MetricTables(profile.to_arrow(), drift.to_arrow())


def _compute_slice(data: MonitorData, rows: Rowset, base_rows: Rowset | None, gran: Granularity,
                   windows: set[int] | None, pending: PendingDrift, slice_key, slice_value, profile: Rows, drift: Rows,
                   baseline_profile: bool, stamps: dict) -> None:
    if rows.n == 0:
        return
    n_versions = max(len(data.versions), 1)
    window_starts, wi = window_index(gran, rows.ts_ns)
    n_windows = window_starts.shape[0]
    ends = gran.end(window_starts)
    prev_starts = gran.shift(window_starts, -1)
    # Version groups of one window are adjacent ids, so a span of n_versions ids is the window's '*' group.
    gid = wi * n_versions + rows.version
    one_pass = stats.USE_KERNEL
    # With the compiled pass, the categorical and quality summaries (mostly GIL-bound) run on a thread of
    # their own while the numeric columns are sorted and walked (in nogil kernels).
    background = ThreadPoolExecutor(max_workers=1) if one_pass and parallel_rows(rows.n) else None
    try:
        if background is not None:
            future = background.submit(group_summaries, data, rows, gid, n_windows * n_versions, (1, n_versions),
                                       False, False)
            summaries = future.result
        else:
            summed = group_summaries(data, rows, gid, n_windows * n_versions, spans=(1, n_versions),
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
                later = background.submit(group_summaries, data, base_rows, base_rows.version, n_versions, spans, True,
                                          False)
                summed_base = group_summaries(data, base_rows, base_rows.version, n_versions, spans, shared=True,
                                         categorical=False)
                complete_baseline = lambda: complete_summaries(summed_base, later.result())
            else:
                summed_base = group_summaries(data, base_rows, base_rows.version, n_versions, spans, shared=True)
            baseline_groups = summed_base[0]
            baseline_all = baseline_groups[int(present[0])] if len(spans) == 1 else summed_base[1][0]
        index_of = {int(s): i for i, s in enumerate(window_starts)}
        if one_pass:
            prev_w = np.array([index_of.get(int(p), -1) for p in prev_starts], dtype=np.int64)
            targets = [baseline_groups.get(v, baseline_all) for v in range(n_versions)]
            numeric_pass(data, rows, gid, wi, n_versions, prev_w, targets, baseline_all, summaries)
        groups, star = summaries()
        if complete_baseline is not None:
            complete_baseline()
    finally:
        if background is not None:
            background.shutdown()
    common = {"granularity": gran.text, "slice_key": slice_key, "slice_value": slice_value,
              "monitor_version": stamps["monitor_version"]}
    logged = {"logging_table_commit_version": stamps["logging_table_commit_version"]}
    consecutive, against_baseline = [], []
    for w in range(n_windows):
        start = int(window_starts[w])
        if windows is not None and start not in windows:
            continue
        win = window_struct(start, int(ends[w]))
        prev = index_of.get(int(prev_starts[w]))
        prev_win = None if prev is None else window_struct(int(window_starts[prev]), start)
        members = [(data.versions[v], groups.get(w * n_versions + v),
                    None if prev is None else groups.get(prev * n_versions + v), baseline_groups.get(v))
                   for v in range(n_versions)]
        members.append((ALL_MODELS, star.get(w * n_versions), None if prev is None else star.get(prev * n_versions),
                        baseline_all))
        for version, g, g_prev, g_base in members:
            if g is None:
                continue
            keys = {**common, "window": win, MODEL_ID_COLUMN: version}
            emit_profile(profile, data, g, {**keys, **logged, "log_type": INPUT})
            if g_prev is not None:
                consecutive.append((g, g_prev, {**keys, "window_cmp": prev_win, "drift_type": CONSECUTIVE}))
            target = g_base if g_base is not None else baseline_all
            if target is not None:
                against_baseline.append((g, target, {**keys, "window_cmp": None, "drift_type": BASELINE}))
    for g, g_prev, keys in consecutive:
        emit_drift(data, g, g_prev, keys, pending, kind="prev")
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
            emit_drift(data, g, target, keys, pending,
                        {name: located[name][i] for name in located} or None, kind="base")
    if baseline_profile and baseline_all is not None and (windows is None or windows):
        keys = {**common, **logged, "window": None, "granularity": None, "log_type": BASELINE}
        for v, g in baseline_groups.items():
            emit_profile(profile, data, g, {**keys, MODEL_ID_COLUMN: data.versions[v]})
        emit_profile(profile, data, baseline_all, {**keys, MODEL_ID_COLUMN: ALL_MODELS})
