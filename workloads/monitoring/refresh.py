"""Refreshing the quality monitor of a model's processed inference table, on either runtime.

Local (embedded): computes the metric tables itself. The refresh is *incremental*: a window whose input rows
are unchanged since the last refresh (same row count, labelled count, prediction and label sums) is not
recomputed; a changed window is, together with the next window's CONSECUTIVE drift. A changed baseline or
spec, or a missing metric table, recomputes everything. Each metric table is rewritten in one Delta commit
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
from workloads.monitoring.granularity import DEFAULT_GRANULARITY, parse_granularity, to_ns
from workloads.monitoring.groups import window_index
from workloads.monitoring.metrics import struct_field
from workloads.monitoring.schema import BASELINE, DRIFT_SCHEMA, PROFILE_SCHEMA
from workloads.ports.tables import Tables, get_tables
from workloads.settings import Settings
from workloads.specs import MODEL_ID_COLUMN, TIMESTAMP_COLUMN, ModelSpec

STATE_VERSION = 2  # 2: the metric tables gained the columns Databricks writes (databricks_metric_tables.json)


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


def _fingerprints(window_starts: np.ndarray, index: np.ndarray, label: np.ndarray, pred: np.ndarray
                  ) -> dict[str, list]:
    """Per window start: row count, labelled count, prediction and label sums (what changes when rows arrive);
    ``index`` is each row's window (see :func:`~workloads.monitoring.groups.window_index`)."""
    n = len(window_starts)
    rows = np.bincount(index, minlength=n)
    labelled = np.bincount(index, weights=np.isfinite(label), minlength=n)
    label_sum = np.bincount(index, weights=np.nan_to_num(label, nan=0.0, posinf=0.0, neginf=0.0), minlength=n)
    pred_sum = np.bincount(index, weights=np.nan_to_num(pred, nan=0.0, posinf=0.0, neginf=0.0), minlength=n)
    return {str(int(s)): [int(rows[i]), int(labelled[i]), repr(float(label_sum[i])), repr(float(pred_sum[i]))]
            for i, s in enumerate(window_starts)}


def _numeric_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


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
    names = [c.name for c, _ in monitored_columns(spec)] + [MODEL_ID_COLUMN, TIMESTAMP_COLUMN]
    commit_version = tables.version(processed)  # stamped on the profile rows (logging_table_commit_version)
    frame = tables.read(processed, version=commit_version)
    missing = [n for n in (MODEL_ID_COLUMN, TIMESTAMP_COLUMN) if n not in frame.columns]
    if missing:
        raise MonitorError(f"{processed} lacks column(s) {missing}; it is not a processed inference table")
    frame = frame[[n for n in names if n in frame.columns]]
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
    new_state = {"version": STATE_VERSION, **context, "windows": {},
                 "monitor_version": _monitor_version(previous, context["spec"])}
    result = RefreshResult(spec.name, "local", [g.text for g in grans])

    ts = to_ns(frame[TIMESTAMP_COLUMN]) if len(frame) else np.zeros(0, dtype=np.int64)
    label, pred = _numeric_column(frame, spec.label.name), _numeric_column(frame, spec.prediction.name)
    profile_parts, drift_parts = [], []
    replaced_by_gran: dict[str, set[int]] = {}
    baseline_profiled = False  # BASELINE profile rows (no window, no granularity) are emitted once
    for gran in grans:
        window_starts, index = window_index(gran, ts)
        starts = window_starts[index]
        prints = _fingerprints(window_starts, index, label, pred)
        old = state.get("windows", {}).get(gran.text, {})
        changed = {int(s) for s, fp in prints.items() if old.get(s) != fp}
        removed = {int(s) for s in old if s not in prints}
        present = np.array(sorted(int(s) for s in prints), dtype=np.int64)
        # A changed window also changes the next window's CONSECUTIVE drift.
        following = set(gran.shift(np.fromiter(changed | removed, dtype=np.int64), 1).tolist()) if changed or removed \
            else set()
        recompute = (changed | (following & set(present.tolist())))
        new_state["windows"][gran.text] = prints
        result.recomputed[gran.text] = len(recompute)
        result.unchanged[gran.text] = len(prints) - len(recompute)
        if not recompute and not removed:
            continue
        replaced_by_gran[gran.text] = recompute | removed
        if recompute:
            needed = recompute | set(gran.shift(np.fromiter(recompute, dtype=np.int64), -1).tolist())
            mask = np.isin(starts, np.fromiter(needed, dtype=np.int64))
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
