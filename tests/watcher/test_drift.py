"""Drift simulation on the demo model: covariate drift of some features breaches the drift thresholds of exactly
those features; reset removes exactly the simulated rows and runs, nothing else (any spec: test_drift_any_spec)."""

import mlflow
import pandas as pd
import pytest

from tests.conftest import make_trained_home
from workloads import registry
from workloads.drift import PREFIX, SIMULATION_TAG, ShiftOptions, reset, simulate
from workloads.labels import pending_labels_table
from workloads.ports.tables import get_tables
from workloads.ports.task_values import LocalTaskValues
from workloads.ports.tracking import configure_tracking, experiment_location
from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN, load_spec
from workloads.watcher.steps import EVALUATE_TASK, MONITOR_TASK, step_evaluate, step_monitor

MODEL = "bakehouse_decorators"  # js_distance max 0.28, population_stability_index max 0.25
SPEC = load_spec(MODEL)
# The features the covariate simulation shifts (--feature); every other feature keeps its distribution.
SHIFTED = ("franchise_size", "hour", "product")


def _send_healthy(settings, n: int, seed: int) -> None:
    from workloads.serving.server import start_server
    from workloads.traffic import send_traffic, serving_pool

    with start_server(settings, SPEC) as handle:
        sent = send_traffic(handle.url, SPEC, serving_pool(settings, SPEC), n=n, batch_size=5, seed=seed,
                            settings=settings)
        handle.flush()
    assert sent.ok == n


@pytest.fixture(scope="module")
def drift_home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("drift-home")
    mp.setenv("MLOPS_HOME", str(path))
    for var in ("MLOPS_BACKEND", "MLOPS_CATALOG", "MLOPS_ENV", "MLOPS_RUN_ID", "MLOPS_TASK_KEY", "MLOPS_ALERTS_CONFIG"):
        mp.delenv(var, raising=False)
    settings, _ = make_trained_home(path, models=(MODEL,))
    _send_healthy(settings, n=40, seed=1)  # today's window
    try:
        yield settings
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def covariate(drift_home):
    """Covariate drift a day later (the simulation's own in-process endpoint), then monitor + evaluate."""
    settings = drift_home
    simulation = simulate(settings, SPEC, kind="covariate", requests=80, batch_size=5, days_ahead=1,
                          options=ShiftOptions(features=SHIFTED))
    assert simulation.failed == 0 and simulation.rows == 400
    tv = LocalTaskValues(settings.home, "covariate-run")
    observed = step_monitor(settings, SPEC, tv.for_task(MONITOR_TASK))
    evaluation, _, _ = step_evaluate(settings, SPEC, tv.for_task(EVALUATE_TASK))
    return {"simulation": simulation, "observed": observed, "evaluation": evaluation, "tv": tv}


def test_covariate_drift_breaches_drift_thresholds_per_feature(covariate):
    observed, evaluation = covariate["observed"], covariate["evaluation"]
    assert observed.rows == 400 and observed.labelled_rows == 400  # only the drifted window's rows
    assert evaluation.health == "breach" and evaluation.retrain_needed
    breached = {(c.metric, c.scope) for c in evaluation.checks if c.status == "breach"}
    for feature in SHIFTED:
        assert ("js_distance", feature) in breached or ("population_stability_index", feature) in breached, (
            feature, sorted(breached))
    assert {scope for _, scope in breached} - {"quality"} == set(SHIFTED), sorted(breached)
    # Each breach is judged per feature against the spec's threshold and its direction (max).
    for check in evaluation.checks:
        if check.scope in SPEC.feature_names and check.status == "breach":
            assert check.direction == "max" and check.observed > SPEC.drift_thresholds[check.metric].value
    assert any(r.startswith("[franchise_size] ") for r in evaluation.reasons)
    # The labels keep their values while hour moves 2 standard deviations (8 hours) past what the champion saw:
    # quality may fall too; the drift breaches above stand on their own.
    assert covariate["tv"].get(EVALUATE_TASK, "retrain_needed") == "true"


def _split(frame: pd.DataFrame, column: str, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(simulated rows, the other rows in a stable order)."""
    simulated = frame[column].fillna("").astype(str).str.startswith(PREFIX)
    return frame[simulated], frame[~simulated].sort_values(key).reset_index(drop=True)


def _runs(settings) -> tuple[set[str], set[str]]:
    configure_tracking(settings)
    experiment = mlflow.get_experiment_by_name(experiment_location(settings, SPEC.name))
    runs = mlflow.MlflowClient().search_runs([experiment.experiment_id], max_results=5000)
    simulated = {r.info.run_id for r in runs if SIMULATION_TAG in r.data.tags}
    return simulated, {r.info.run_id for r in runs} - simulated


def test_reset_removes_exactly_the_simulated_rows_and_runs(drift_home, covariate):
    settings = drift_home
    tables = get_tables(settings)
    # A second simulation left un-unpacked (payload rows + pending labels), and real traffic after it, also
    # waiting: reset must take the former and leave the latter.
    simulate(settings, SPEC, kind="concept", requests=10, batch_size=5, days_ahead=1)
    _send_healthy(settings, n=6, seed=2)
    names = {"payload": (settings.table(SPEC.payload_table), "client_request_id", "databricks_request_id"),
             "processed": (settings.table(SPEC.processed_table), REQUEST_ID_COLUMN, EXAMPLE_ID_COLUMN),
             "pending": (settings.table(pending_labels_table(SPEC)), REQUEST_ID_COLUMN, EXAMPLE_ID_COLUMN)}
    before = {k: _split(tables.read(name), column, key) for k, (name, column, key) in names.items()}
    assert len(before["payload"][0]) == 90 and len(before["processed"][0]) == 400 and len(before["pending"][0]) == 50
    assert len(before["payload"][1]) == 46 and len(before["processed"][1]) == 200 and len(before["pending"][1]) == 30
    sim_runs, other_runs = _runs(settings)
    assert len(sim_runs) == 2 and other_runs
    versions = [(v.version, v.run_id) for v in registry.list_versions(settings, SPEC)]

    result = reset(settings, SPEC)

    assert result.rows_deleted == {names[k][0]: len(before[k][0]) for k in names}
    assert result.runs_deleted == 2
    for k, (name, column, key) in names.items():
        simulated, kept = _split(tables.read(name), column, key)
        assert simulated.empty, k
        pd.testing.assert_frame_equal(kept, before[k][1], check_dtype=False, obj=k)
    assert _runs(settings) == (set(), other_runs)
    assert [(v.version, v.run_id) for v in registry.list_versions(settings, SPEC)] == versions
    # Nothing simulated left: a second reset deletes nothing.
    again = reset(settings, SPEC)
    assert set(again.rows_deleted.values()) == {0} and again.runs_deleted == 0
