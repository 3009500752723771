"""Drift simulation: send drifted, labelled traffic through the endpoint; reset removes exactly that.

Kinds:

- ``covariate``: the feature mix shifts (big franchises, the morning rush, Tokyo Tidbits and amex), the
  quantity still follows the same rules: drift metrics breach, quality may hold;
- ``concept``: the same kind of transactions, but customers now buy 10 more units each time (a
  bulk-buying trend): the champion under-predicts and its rmse/r2 breach.

By default the simulation starts its own in-process endpoint whose clock is set ``days_ahead`` days
forward, so the drifted requests land in a new monitoring window (as if that much time had passed);
``url`` sends to a running endpoint instead. Every simulated request's id starts with
``drift-<simulation id>-``, and the simulation's MLflow run is tagged ``mlops.simulation``, which is
what ``reset`` deletes (nothing else).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from workloads.clock import ShiftableClock
from workloads.errors import MlopsError
from workloads.ports.tables import get_tables
from workloads.settings import Settings
from workloads.specs import REQUEST_ID_COLUMN, ModelSpec

KINDS = ("covariate", "concept")
PREFIX = "drift-"
SIMULATION_TAG = "mlops.simulation"


def covariate_shift(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Resample toward big franchises, morning hours, one product and amex (labels keep their rules)."""
    rng = np.random.default_rng(seed)
    weight = np.ones(len(frame))
    weight *= np.where(frame["franchise_size"].isin(["L", "XL"]), 6.0, 1.0)
    weight *= np.where(frame["hour"].between(7, 9), 4.0, 1.0)
    weight *= np.where(frame["product"] == "Tokyo Tidbits", 5.0, 1.0)
    weight *= np.where(frame["paymentMethod"] == "amex", 3.0, 1.0)
    idx = rng.choice(len(frame), size=len(frame), replace=True, p=weight / weight.sum())
    return frame.iloc[idx].reset_index(drop=True)


CONCEPT_EXTRA_UNITS = 10


def concept_shift(frame: pd.DataFrame) -> pd.DataFrame:
    """Same transactions, new behaviour: 10 more units each (the relation the champion learned is stale)."""
    out = frame.copy()
    out["quantity"] = (out["quantity"] + CONCEPT_EXTRA_UNITS).astype("int64")
    return out


@dataclass
class SimulationResult:
    simulation_id: str
    kind: str
    requests: int
    rows: int
    failed: int
    request_time: datetime
    run_id: str


def drifted_frame(settings: Settings, spec: ModelSpec, kind: str, seed: int = 0) -> pd.DataFrame:
    from workloads.traffic import serving_pool

    if kind not in KINDS:
        raise MlopsError(f"drift kind must be one of {', '.join(KINDS)}, got {kind!r}")
    frame = serving_pool(settings, spec)
    if kind == "covariate":
        return covariate_shift(frame, seed)
    return concept_shift(frame)


def simulate(settings: Settings, spec: ModelSpec, kind: str = "concept", requests: int = 120, batch_size: int = 5,
             url: str | None = None, days_ahead: float = 1.0, seed: int = 7) -> SimulationResult:
    """Send drifted traffic (with its labels recorded) and log a tagged MLflow run describing it."""
    import mlflow

    from workloads.ports.tracking import configure_tracking, ensure_experiment
    from workloads.traffic import send_traffic

    frame = drifted_frame(settings, spec, kind, seed)
    simulation_id = uuid.uuid4().hex[:10]
    prefix = f"{PREFIX}{simulation_id}"
    offset = timedelta(days=days_ahead)
    started = datetime.now(UTC)
    if url is None:
        from workloads.serving.server import start_server

        with start_server(settings, spec, clock=ShiftableClock(offset)) as handle:
            result = send_traffic(handle.url, spec, frame, n=requests, batch_size=batch_size, seed=seed,
                                  settings=settings, request_prefix=prefix, replace=False)
            handle.flush()
        request_time = started + offset
    else:
        result = send_traffic(url, spec, frame, n=requests, batch_size=batch_size, seed=seed, settings=settings,
                              request_prefix=prefix, replace=False)
        request_time = started
    configure_tracking(settings)
    ensure_experiment(settings, spec.name)
    with mlflow.start_run(run_name=f"{spec.name}-drift-{kind}-{simulation_id}") as run:
        mlflow.set_tags({SIMULATION_TAG: simulation_id, "mlops.kind": "drift_simulation", "drift_kind": kind})
        mlflow.log_params({"kind": kind, "requests": requests, "batch_size": batch_size,
                           "days_ahead": days_ahead if url is None else 0, "request_prefix": prefix})
        mlflow.log_metrics({"sent_rows": result.examples, "failed_requests": result.failed})
    return SimulationResult(simulation_id, kind, requests, result.examples, result.failed, request_time, run.info.run_id)


@dataclass
class ResetResult:
    rows_deleted: dict[str, int]
    runs_deleted: int


def reset(settings: Settings, spec: ModelSpec) -> ResetResult:
    """Delete exactly the simulated requests (payload, processed, pending labels) and simulation runs."""
    import mlflow

    from workloads.labels import pending_labels_table
    from workloads.ports.tracking import configure_tracking, experiment_location

    tables = get_tables(settings)
    deleted: dict[str, int] = {}
    targets = {
        settings.table(spec.payload_table): "client_request_id",
        settings.table(spec.processed_table): REQUEST_ID_COLUMN,
        settings.table(pending_labels_table(spec)): REQUEST_ID_COLUMN,
    }
    for table, column in targets.items():
        if tables.exists(table):
            deleted[table] = tables.delete(table, f"{column} LIKE '{PREFIX}%'")
    configure_tracking(settings)
    runs_deleted = 0
    experiment = mlflow.get_experiment_by_name(experiment_location(settings, spec.name))
    if experiment is not None:
        client = mlflow.MlflowClient()
        for run in client.search_runs([experiment.experiment_id], f"tags.`{SIMULATION_TAG}` != ''", max_results=5000):
            client.delete_run(run.info.run_id)
            runs_deleted += 1
    return ResetResult(deleted, runs_deleted)
