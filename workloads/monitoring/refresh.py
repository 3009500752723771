"""Refreshing the quality monitor of a model's processed inference table, on either runtime.

Local (embedded): computes the metric tables itself. The refresh is *incremental* and reads only what it
recomputes: the windows that can have changed are those holding a row of a data file added or removed since the
table version the last refresh read (each file's min/max ``timestamp`` in the Delta log: appends, label MERGEs
and deletes all show there, and no data file is opened to find them); each is recomputed together with the next
window (its CONSECUTIVE drift), and only those windows and their predecessors are read, with a timestamp
predicate (files and Parquet row groups pruned by their statistics) and only the monitored columns. Cost and
memory follow the new data, not the table's history. A changed baseline or spec, a missing metric table, or a
log that cannot say (a file without timestamp statistics) recomputes everything. Each metric table is rewritten in one Delta commit
(an overwrite of the small metrics table), so a crash mid-refresh leaves the previous complete version
readable; the refresh state (window fingerprints, under ``<home>/monitor/``) is saved only after both
commits, so an interrupted refresh is simply redone next time.

Databricks: the monitor itself is infra's; here a refresh is started through the Data Quality API (the legacy
``quality_monitors`` API as fallback: ``monitor_api``), polled until it ends or a bounded timeout passes, and
the same two tables are then read through the tables port.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from workloads.errors import MlopsError
from workloads.monitoring.compute import compute_metrics, monitored_columns, prepare
from workloads.monitoring.granularity import (
    DEFAULT_GRANULARITY,
    Granularity,
    parse_granularity,
    to_ns,
    to_timestamp,
)
from workloads.monitoring.groups import window_index
from workloads.monitoring.metrics import struct_field
from workloads.monitoring.schema import BASELINE, DRIFT_SCHEMA, PROFILE_SCHEMA
from workloads.ports.tables import RowFilter, Tables, get_tables
from workloads.settings import Settings
from workloads.specs import MODEL_ID_COLUMN, TIMESTAMP_COLUMN, ModelSpec

STATE_VERSION = 3  # 2: the metric tables gained Databricks' columns; 3: windows found from the Delta log's file stats


class MonitorError(MlopsError):
    """The monitor cannot refresh (missing input table, failed or timed-out Databricks refresh)."""


@dataclass
class RefreshResult:
    """What a refresh did."""

    model: str
    backend: str
    granularities: list[str]
    recomputed: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    profile_rows: int = 0
    drift_rows: int = 0
    seconds: float = 0.0
    refresh_id: int | None = None
    state: str | None = None


def refresh_monitor(settings: Settings, spec: ModelSpec, granularities: list[str] | None = None, *,
                    exact_pvalues: bool = False, full: bool = False, tables: Tables | None = None,
                    workspace=None, timeout_s: float = 3600.0, poll_s: float = 10.0) -> RefreshResult:
    """Refresh the monitor of ``spec``'s processed table on the configured backend.

    Args:
        settings: runtime settings (backend selects local computation or Databricks ``run_refresh``).
        spec: the model spec.
        granularities: local only (on Databricks they are the monitor's, set by infra); default ``["1 day"]``.
        exact_pvalues: local only; KS p-values exactly as scipy's instead of the fast method.
        full: local only; recompute every window.
        tables: tables port override (tests).
        workspace: ``databricks.sdk.WorkspaceClient`` override (tests).
        timeout_s / poll_s: Databricks only; how long to wait for the refresh and how often to poll.
    """
    tables = tables or get_tables(settings)
    if settings.backend == "databricks":
        return refresh_databricks(settings, spec, tables=tables, workspace=workspace, timeout_s=timeout_s,
                                  poll_s=poll_s)
    return refresh_local(settings, spec, granularities, exact_pvalues=exact_pvalues, full=full, tables=tables)


# ----------------------------------------------------------------------------------------------------- local
def _state_path(settings: Settings, table: str) -> Path:
    return settings.home / "monitor" / f"{table}.state.json"


def _load_state(path: Path) -> dict:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if state.get("version") == STATE_VERSION else {}


def _save_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    tmp.replace(path)


def _baseline_fingerprint(tables: Tables, name: str) -> str:
    if not tables.exists(name):
        return "none"
    return f"v{tables.version(name)}"


def _window_starts_ns(values: pd.Series) -> np.ndarray:
    starts = values.map(lambda w: struct_field(w, "start"))
    return to_ns(starts) if len(starts) else np.zeros(0, dtype=np.int64)


def _keep_existing(existing: pd.DataFrame, granularity: str, replaced: set[int], baseline_rows: bool) -> pd.DataFrame:
    """Existing metric rows that this refresh does not replace."""
    if existing.empty:
        return existing
    starts = _window_starts_ns(existing["window"])
    same = (existing["granularity"] == granularity).to_numpy()
    drop = same & np.isin(starts, np.fromiter(replaced, dtype=np.int64, count=len(replaced)))
    if baseline_rows:  # BASELINE profile rows belong to no granularity: replaced by the new ones
        drop |= (existing["log_type"] == BASELINE).to_numpy()
    return existing[~drop]


def _monitor_version(previous: dict, spec_hash: str) -> int:
    """The local monitor configuration's version (``monitor_version``): 0 at first, one more whenever the spec
    changed since the previous refresh (Databricks counts updates of the monitor the same way)."""
    version = int(previous.get("monitor_version", 0))
    return version + 1 if previous.get("spec") not in (None, spec_hash) else version


def _arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    frame = frame.reindex(columns=schema.names)
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _windows_touched(gran: Granularity, spans: list[tuple[int, int]]) -> set[int]:
    """Starts of the windows of ``gran`` that hold any instant of the ``[lo, hi]`` spans (epoch ns)."""
    touched: set[int] = set()
    for lo, hi in spans:
        start = int(gran.floor(np.array([lo]))[0])
        while start <= hi:
            touched.add(start)
            start = int(gran.shift(np.array([start]), 1)[0])
    return touched


def _ranges(starts: set[int], gran: Granularity) -> list[tuple[int, int]]:
    """``[start, end)`` ranges (epoch ns) covering the windows ``starts``, adjacent windows merged."""
    out: list[tuple[int, int]] = []
    for start in sorted(starts):
        end = int(gran.end(np.array([start]))[0])
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _shifted(gran: Granularity, starts: set[int], windows: int) -> set[int]:
    """The starts of the windows ``windows`` after (negative: before) each of ``starts``."""
    if not starts:
        return set()
    return set(gran.shift(np.fromiter(starts, dtype=np.int64, count=len(starts)), windows).tolist())


def refresh_local(settings: Settings, spec: ModelSpec, granularities: list[str] | None = None, *,
                  exact_pvalues: bool = False, full: bool = False, tables: Tables | None = None) -> RefreshResult:
    """Compute the metric tables locally, incrementally; see the module docstring."""
    started = time.perf_counter()
    tables = tables or get_tables(settings)
    grans = [parse_granularity(g) for g in (granularities or [DEFAULT_GRANULARITY])]
    processed = settings.table(spec.processed_table)
    if not tables.exists(processed):
        raise MonitorError(f"processed inference table {processed} does not exist yet; serve traffic and unpack "
                           f"the payloads first")
    present_columns = set(tables.columns(processed))
    missing = [n for n in (MODEL_ID_COLUMN, TIMESTAMP_COLUMN) if n not in present_columns]
    if missing:
        raise MonitorError(f"{processed} lacks column(s) {missing}; it is not a processed inference table")
    # only the columns the monitor profiles (a spec column the table lacks is profiled as all null)
    names = [n for n in [c.name for c, _ in monitored_columns(spec)] + [MODEL_ID_COLUMN, TIMESTAMP_COLUMN]
             if n in present_columns]
    commit_version = tables.version(processed)  # stamped on the profile rows (logging_table_commit_version)
    baseline_name = settings.table(spec.baseline_table)
    baseline: list[pd.DataFrame | None] = []  # read once, and only when a window is recomputed
    profile_name = settings.metrics_table(spec.profile_metrics_table)
    drift_name = settings.metrics_table(spec.drift_metrics_table)

    state_path = _state_path(settings, processed)
    previous = _load_state(state_path)
    state = {} if full else previous
    context = {"spec": spec.content_hash(), "baseline": _baseline_fingerprint(tables, baseline_name)}
    tables_present = tables.exists(profile_name) and tables.exists(drift_name)
    if not tables_present or any(state.get(k) != v for k, v in context.items()):
        state = {}
    new_state = {"version": STATE_VERSION, **context, "table_version": commit_version, "windows": {},
                 "monitor_version": _monitor_version(previous, context["spec"])}
    result = RefreshResult(spec.name, "local", [g.text for g in grans])

    # Which windows can have changed: those holding any row of a data file added or removed since the version the
    # last refresh read (the files' statistics in the Delta log); without a usable previous state, all of them.
    spans = None
    if state.get("table_version") is not None and all(g.text in state.get("windows", {}) for g in grans):
        spans = tables.changed_spans(processed, TIMESTAMP_COLUMN, int(state["table_version"]))
    candidates: dict[str, set[int]] = {}
    if spans is not None:
        edges = to_ns(pd.Series([edge for span in spans for edge in span])).reshape(-1, 2) if spans else []
        spans_ns = [(int(lo), int(hi)) for lo, hi in edges]
        for gran in grans:
            touched = _windows_touched(gran, spans_ns)
            present = set(state["windows"][gran.text])
            # a changed window changes the next one's CONSECUTIVE drift
            candidates[gran.text] = touched | (_shifted(gran, touched, 1) & present)
        needed = [r for gran in grans
                  for r in _ranges(candidates[gran.text] | _shifted(gran, candidates[gran.text], -1), gran)]
        where = RowFilter(TIMESTAMP_COLUMN, tuple((to_timestamp(lo), to_timestamp(hi)) for lo, hi in needed))
        frame = tables.read(processed, names, version=commit_version, where=where) if needed else \
            pd.DataFrame(columns=names)
    else:
        frame = tables.read(processed, names, version=commit_version)

    ts = to_ns(frame[TIMESTAMP_COLUMN]) if len(frame) else np.zeros(0, dtype=np.int64)
    profile_parts, drift_parts = [], []
    replaced_by_gran: dict[str, set[int]] = {}
    baseline_profiled = False  # BASELINE profile rows (no window, no granularity) are emitted once
    for gran in grans:
        window_starts, index = window_index(gran, ts)
        starts = window_starts[index]
        with_rows = {int(s) for s in window_starts}
        old = set(state.get("windows", {}).get(gran.text, []))
        if spans is None:
            recompute, removed, present = with_rows, set(), with_rows
        else:
            recompute = candidates[gran.text] & with_rows
            removed = (candidates[gran.text] & old) - with_rows
            present = (old - candidates[gran.text]) | recompute
        new_state["windows"][gran.text] = sorted(present)
        result.recomputed[gran.text] = len(recompute)
        result.unchanged[gran.text] = len(present) - len(recompute)
        if not recompute and not removed:
            continue
        replaced_by_gran[gran.text] = recompute | removed
        if recompute:
            needed_starts = recompute | _shifted(gran, recompute, -1)
            mask = np.isin(starts, np.fromiter(needed_starts, dtype=np.int64))
            if not baseline:
                baseline.append(tables.read(baseline_name) if tables.exists(baseline_name) else None)
            data = prepare(frame[mask].reset_index(drop=True), baseline[0], spec)
            tables_out = compute_metrics(data, gran, windows=recompute, exact_pvalues=exact_pvalues,
                                         baseline_profile=not baseline_profiled,
                                         monitor_version=new_state["monitor_version"],
                                         logging_table_commit_version=commit_version)
            baseline_profiled = True
            profile_parts.append(tables_out.profile)
            drift_parts.append(tables_out.drift)

    if replaced_by_gran:
        _rewrite(tables, profile_name, PROFILE_SCHEMA, profile_parts, replaced_by_gran,
                 baseline_rows=baseline_profiled)
        _rewrite(tables, drift_name, DRIFT_SCHEMA, drift_parts, replaced_by_gran, baseline_rows=False)
    _save_state(state_path, new_state)
    result.profile_rows = sum(t.num_rows for t in profile_parts)
    result.drift_rows = sum(t.num_rows for t in drift_parts)
    result.seconds = time.perf_counter() - started
    return result


def _rewrite(tables: Tables, name: str, schema: pa.Schema, parts: list[pa.Table],
             replaced_by_gran: dict[str, set[int]], baseline_rows: bool) -> None:
    """Replace the recomputed windows' rows of a metrics table in a single commit."""
    kept = []
    if tables.exists(name):
        existing = tables.read(name)
        for gran, replaced in replaced_by_gran.items():
            existing = _keep_existing(existing, gran, replaced, baseline_rows)
        if len(existing):
            kept.append(_arrow(existing, schema))
    combined = pa.concat_tables(kept + [p.select(schema.names).cast(schema) for p in parts]) if kept or parts \
        else schema.empty_table()
    tables.write(name, combined, mode="overwrite")


# ------------------------------------------------------------------------------------------------ databricks
def refresh_databricks(settings: Settings, spec: ModelSpec, *, tables: Tables | None = None, workspace=None,
                       timeout_s: float = 3600.0, poll_s: float = 10.0) -> RefreshResult:
    """Start a Databricks monitor refresh, wait for it (bounded), then read the two metric tables."""
    from databricks.sdk.errors import DatabricksError

    from workloads.monitoring.monitor_api import MonitorRefreshes

    started = time.perf_counter()
    if workspace is None:
        from databricks.sdk import WorkspaceClient

        workspace = WorkspaceClient()
    table = settings.table(spec.processed_table)
    refreshes = MonitorRefreshes(workspace, table)
    try:
        info = refreshes.start()
    except DatabricksError as exc:
        raise MonitorError(f"cannot start a refresh of the monitor on {table}: {exc} "
                           f"(is the monitor deployed? run the infra deployment first)") from None
    deadline = time.monotonic() + timeout_s
    while info.running:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MonitorError(f"monitor refresh {info.refresh_id} on {table} still {info.state} after "
                               f"{timeout_s:.0f}s; raise --timeout or check the table's Quality tab")
        time.sleep(min(poll_s, remaining))
        try:
            info = refreshes.get(info.refresh_id)
        except DatabricksError as exc:
            raise MonitorError(f"cannot read monitor refresh {info.refresh_id} on {table}: {exc}") from None
    if info.state != "SUCCESS":
        raise MonitorError(f"monitor refresh {info.refresh_id} on {table} ended {info.state}: "
                           f"{info.message or 'no message'}")
    tables = tables or get_tables(settings)
    profile = tables.read(settings.metrics_table(spec.profile_metrics_table))
    drift = tables.read(settings.metrics_table(spec.drift_metrics_table))
    return RefreshResult(spec.name, "databricks", [], profile_rows=len(profile), drift_rows=len(drift),
                         seconds=time.perf_counter() - started, refresh_id=info.refresh_id, state=info.state)
