"""The watcher's steps, as the Databricks job runs them: monitor -> evaluate -> (retrain?) -> retrain.

Each step reads what earlier steps published through the task-values port and publishes its own
results. ``run_watcher`` chains them in one process (``mlops watch run``). A window already handled
(same window, same row counts) is not acted on again; promotion takes the model's lock and re-checks
the champion, so two runs at once cannot both promote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from workloads import registry
from workloads.alerts import notify
from workloads.errors import MlopsError
from workloads.ports.tables import get_tables
from workloads.ports.task_values import TaskValues
from workloads.promotion import PromotionError
from workloads.settings import Settings
from workloads.specs import ModelSpec, Threshold
from workloads.watcher.evaluation import Evaluation, ObservedMetrics, evaluate_window
from workloads.watcher.observation import latest_batch_metrics, observe_latest_window
from workloads.watcher.retraining import RetrainOutcome, retrain_and_validate

MONITOR_TASK, EVALUATE_TASK, RETRAIN_TASK = "monitor", "evaluate", "retrain"


def state_table(spec: ModelSpec) -> str:
    return f"{spec.name}_watcher_state"


def verdicts_table(spec: ModelSpec) -> str:
    """One row per evaluation: the watcher's verdicts, for ``mlops status`` and the report."""
    return f"{spec.name}_watcher_verdicts"


def record_verdict(settings: Settings, spec: ModelSpec, evaluation: Evaluation, observed: ObservedMetrics) -> None:
    row = {"model": spec.name, "env": settings.env, "window_start": observed.window_start or "",
           "rows": int(observed.rows), "labelled_rows": int(observed.labelled_rows), "health": evaluation.health,
           "retrain_needed": bool(evaluation.retrain_needed), "reasons": json.dumps(evaluation.reasons),
           "at": pd.Timestamp(datetime.now(UTC))}
    get_tables(settings).write(settings.table(verdicts_table(spec)), pd.DataFrame([row]), mode="append")


def last_verdict(settings: Settings, spec: ModelSpec) -> dict | None:
    """The latest recorded evaluation of ``spec`` in this environment (None when the watcher never ran)."""
    tables = get_tables(settings)
    name = settings.table(verdicts_table(spec))
    if not tables.exists(name):
        return None
    rows = tables.read(name)
    if rows.empty:
        return None
    row = rows.sort_values("at").iloc[-1].to_dict()
    row["reasons"] = json.loads(row["reasons"] or "[]")
    return row


@dataclass
class WatchResult:
    observed: ObservedMetrics
    evaluation: Evaluation
    retrain: RetrainOutcome | None = None
    skipped: str | None = None
    alerts: list[str] = field(default_factory=list)


# --- monitor -----------------------------------------------------------------------------------------

def step_monitor(settings: Settings, spec: ModelSpec, task_values: TaskValues, granularity: str = "1 day",
                 unpack_first: bool = True) -> ObservedMetrics:
    """Unpack new payloads, merge waiting labels, refresh the monitor, read and publish the latest window."""
    # A model with no champion has nothing to watch: fail (and alert) rather than report an empty window.
    registry.require_alias(settings, spec, registry.CHAMPION)
    if unpack_first:
        from workloads.labels import ingest_labels
        from workloads.unpacking import UnpackError, unpack

        try:
            unpack(settings, spec)
        except UnpackError:
            pass  # no payload table yet: nothing served; the window read below is then empty and reported
        ingest_labels(settings, spec)
    processed = settings.table(spec.processed_table)
    if get_tables(settings).exists(processed):  # local computation, or run_refresh on Databricks
        from workloads.monitoring.refresh import refresh_monitor

        refresh_monitor(settings, spec, granularities=[granularity])
    observed = observe_latest_window(settings, spec, granularity)
    observed.batch = latest_batch_metrics(settings, spec)
    task_values.set("observed", observed.to_dict())
    return observed


# --- evaluate ----------------------------------------------------------------------------------------

def _window_key(observed: ObservedMetrics) -> dict:
    return {"window_start": observed.window_start or "", "granularity": observed.granularity or "",
            "rows": int(observed.rows), "labelled_rows": int(observed.labelled_rows)}


def already_handled(settings: Settings, spec: ModelSpec, observed: ObservedMetrics) -> dict | None:
    """The state row of a previous run that handled this very window (same rows), if any."""
    tables = get_tables(settings)
    name = settings.table(state_table(spec))
    if observed.window_start is None or not tables.exists(name):
        return None
    state = tables.read(name)
    key = _window_key(observed)
    match = state[(state["window_start"] == key["window_start"]) & (state["granularity"] == key["granularity"])
                  & (state["rows"] == key["rows"]) & (state["labelled_rows"] == key["labelled_rows"])]
    return None if match.empty else match.iloc[-1].to_dict()


def mark_handled(settings: Settings, spec: ModelSpec, observed: ObservedMetrics, decision: str) -> None:
    if observed.window_start is None:
        return
    row = {**_window_key(observed), "decision": decision, "handled_at": pd.Timestamp(datetime.now(UTC))}
    get_tables(settings).write(settings.table(state_table(spec)), pd.DataFrame([row]), mode="append")


def new_training_data(settings: Settings, spec: ModelSpec) -> bool:
    """Whether any source table's Delta version is newer than the champion's training data version."""
    champion = registry.get_alias(settings, spec, registry.CHAMPION)
    if champion is None or "data_versions" not in champion.tags:
        return False
    trained_on = json.loads(champion.tags["data_versions"])
    tables = get_tables(settings)
    return any(tables.exists(t) and tables.version(t) > v for t, v in trained_on.items())


def step_evaluate(settings: Settings, spec: ModelSpec, task_values: TaskValues, granularity: str = "1 day",
                  overrides: dict[str, Threshold] | None = None, force: bool = False) -> tuple[Evaluation, ObservedMetrics, str | None]:
    """Judge the latest window; publish ``retrain_needed`` ("true"/"false") and the reasons."""
    published = task_values.get(MONITOR_TASK, "observed")
    observed = ObservedMetrics.from_dict(published) if published else observe_latest_window(settings, spec, granularity)
    handled = None if force else already_handled(settings, spec, observed)
    if handled is not None:
        note = f"window {observed.window_start} already handled ({handled['decision']}); nothing new"
        evaluation = Evaluation(False, "handled", [note], [], observed.window_start, observed.window_end)
        skipped = "window already handled"
    else:
        evaluation = evaluate_window(spec, observed, overrides, force=force,
                                     new_training_data=new_training_data(settings, spec))
        skipped = None
        if evaluation.health == "breach":
            notify(settings, "breach", spec.name, f"{spec.name}: thresholds breached in window "
                   f"{observed.window_start}: " + "; ".join(evaluation.reasons[:3]), evaluation.to_dict())
        if not evaluation.retrain_needed:
            mark_handled(settings, spec, observed, f"no retrain ({evaluation.health})")
    record_verdict(settings, spec, evaluation, observed)
    task_values.set("retrain_needed", "true" if evaluation.retrain_needed else "false")
    task_values.set("reasons", evaluation.reasons)
    task_values.set("health", evaluation.health)
    task_values.set("quality_breach", any(c.status == "breach" and c.scope == "quality" for c in evaluation.checks))
    task_values.set("window_start", observed.window_start)
    task_values.set("observed", observed.to_dict())
    return evaluation, observed, skipped


# --- retrain -----------------------------------------------------------------------------------------

def step_retrain(settings: Settings, spec: ModelSpec, task_values: TaskValues,
                 overrides: dict[str, Threshold] | None = None, reason: str | None = None) -> RetrainOutcome:
    """Train a challenger on fresh data, validate it against the champion, promote only if it wins."""
    window_start = task_values.get(EVALUATE_TASK, "window_start")
    reasons = task_values.get(EVALUATE_TASK, "reasons") or []
    why = reason or ("; ".join(reasons[:2]) if reasons else "retrain requested")
    since = pd.Timestamp(window_start) if window_start else None
    try:
        outcome = retrain_and_validate(settings, spec, since=since, reason=why, overrides=overrides,
                                       quality_breach=bool(task_values.get(EVALUATE_TASK, "quality_breach")))
    except PromotionError as exc:
        notify(settings, "validation_failed", spec.name, f"{spec.name}: promotion refused: {exc}")
        raise
    if outcome.promoted:
        notify(settings, "promotion", spec.name, outcome.summary(),
               {"champion_metrics": outcome.champion_metrics, "challenger_metrics": outcome.challenger_metrics,
                "holdout": outcome.holdout, "holdout_rows": outcome.holdout_rows,
                "comparison": outcome.comparison.to_dict() if outcome.comparison else None})
    else:
        notify(settings, "validation_failed", spec.name, outcome.summary(),
               {"champion_metrics": outcome.champion_metrics, "challenger_metrics": outcome.challenger_metrics,
                "holdout_rows": outcome.holdout_rows,
                "comparison": outcome.comparison.to_dict() if outcome.comparison else None})
    observed = task_values.get(EVALUATE_TASK, "observed")
    if observed:
        mark_handled(settings, spec, ObservedMetrics.from_dict(observed),
                     "promoted" if outcome.promoted else "kept champion")
    task_values.set("promoted", "true" if outcome.promoted else "false")
    task_values.set("challenger_version", outcome.challenger_version)
    task_values.set("summary", outcome.summary())
    return outcome


# --- the whole graph ---------------------------------------------------------------------------------

def run_watcher(settings: Settings, spec: ModelSpec, task_values, granularity: str = "1 day",
                overrides: dict[str, Threshold] | None = None, force: bool = False) -> WatchResult:
    """monitor -> evaluate -> (retrain_needed) -> retrain, like the Databricks job, in one process.

    ``task_values`` is a local task-values store with ``for_task``: each step writes under its own key.
    """
    try:
        observed = step_monitor(settings, spec, task_values.for_task(MONITOR_TASK), granularity)
        evaluation, observed, skipped = step_evaluate(settings, spec, task_values.for_task(EVALUATE_TASK),
                                                      granularity, overrides, force)
        result = WatchResult(observed, evaluation, skipped=skipped)
        if evaluation.retrain_needed:
            result.retrain = step_retrain(settings, spec, task_values.for_task(RETRAIN_TASK), overrides)
        return result
    except MlopsError as exc:
        notify(settings, "failure", spec.name, f"{spec.name}: watcher failed: {exc}")
        raise
