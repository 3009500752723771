"""The watcher's steps end to end on the embedded backend: healthy window, idempotent re-run, concept drift
caught -> retrain -> validate -> promote -> endpoint swap, the Databricks task-values path against a fake
``dbutils``, failure alerts, and the CLI chained like the Databricks job (the demo story: test_demo.py).

One home per module (training is the slow part); fixtures build the story in order (healthy traffic, then
drift a day later), so each test can also be run alone.
"""

import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pandas as pd
import pytest

from tests.conftest import make_trained_home
from workloads import registry
from workloads.alerts import read_outbox
from workloads.clock import ShiftableClock
from workloads.data.roles import is_fresh_holdout
from workloads.ports.task_values import DatabricksTaskValues, LocalTaskValues
from workloads.promotion import read_audit
from workloads.specs import EXAMPLE_ID_COLUMN, load_spec
from workloads.watcher.evaluation import ObservedMetrics
from workloads.watcher.retraining import fresh_traffic
from workloads.watcher.steps import (
    EVALUATE_TASK,
    MONITOR_TASK,
    RETRAIN_TASK,
    run_watcher,
    step_evaluate,
    step_retrain,
)

MODEL = "bakehouse_decorators"  # rmse max 5, r2 min 0.5; js_distance max 0.28, psi max 0.25
SPEC = load_spec(MODEL)
HEALTHY_REQUESTS, DRIFT_REQUESTS, ROWS = 60, 120, 5


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained home (v1 champion) and its endpoint running on a simulated clock."""
    from workloads.serving.server import start_server

    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("watcher-home")
    mp.setenv("MLOPS_HOME", str(path))
    for var in ("MLOPS_BACKEND", "MLOPS_CATALOG", "MLOPS_ENV", "MLOPS_RUN_ID", "MLOPS_TASK_KEY", "MLOPS_ALERTS_CONFIG",
                "MLOPS_ALERT_WEBHOOK", "MLOPS_ALERT_EMAILS", "MLOPS_ALERT_SNS_TOPIC", "MLOPS_ALERT_OUTBOX"):
        mp.delenv(var, raising=False)
    settings, results = make_trained_home(path, models=(MODEL,))
    assert results[MODEL].alias == "champion"
    clock = ShiftableClock()
    handle = start_server(settings, SPEC, clock=clock, poll_interval=0.2)
    try:
        yield {"settings": settings, "clock": clock, "handle": handle, "v1": results[MODEL].version}
    finally:
        handle.stop()
        mp.undo()


def _version_count(settings) -> int:
    return len(registry.list_versions(settings, SPEC))


def _outbox(settings) -> list:
    return read_outbox(settings.home, model=MODEL)


@pytest.fixture(scope="module")
def healthy(world):
    """Held-back (undrifted) traffic today, then one watcher run (which unpacks and labels it itself)."""
    from workloads.traffic import send_traffic, serving_pool

    settings, handle = world["settings"], world["handle"]
    sent = send_traffic(handle.url, SPEC, serving_pool(settings, SPEC), n=HEALTHY_REQUESTS, batch_size=ROWS, seed=42,
                        settings=settings)
    assert sent.ok == HEALTHY_REQUESTS
    handle.flush()
    tv = LocalTaskValues(settings.home, "healthy-run")
    return {"result": run_watcher(settings, SPEC, tv), "run_id": "healthy-run"}


@pytest.fixture(scope="module")
def drifted(world, healthy):
    """Concept drift a day later through the running endpoint, then a watcher run."""
    from workloads.drift import simulate

    settings, handle = world["settings"], world["handle"]
    world["clock"].offset = timedelta(days=1)
    simulation = simulate(settings, SPEC, kind="concept", url=handle.url, requests=DRIFT_REQUESTS, batch_size=ROWS)
    assert simulation.failed == 0 and simulation.rows == DRIFT_REQUESTS * ROWS
    handle.flush()
    alerts_before = len(_outbox(settings))
    audit_before = len(read_audit(settings, MODEL))
    result = run_watcher(settings, SPEC, LocalTaskValues(settings.home, "drift-run"))
    return {"result": result, "run_id": "drift-run", "alerts_before": alerts_before, "audit_before": audit_before,
            "simulation": simulation}


# --- 1. healthy ---------------------------------------------------------------------------------------

def test_healthy_window_needs_no_retrain_and_publishes_task_values(world, healthy):
    settings = world["settings"]
    result = healthy["result"]
    assert result.evaluation.health == "healthy", result.evaluation.reasons
    assert not result.evaluation.retrain_needed and result.retrain is None and result.skipped is None
    assert result.observed.rows == HEALTHY_REQUESTS * ROWS
    assert result.observed.labelled_rows == HEALTHY_REQUESTS * ROWS  # step_monitor unpacked and merged labels
    assert result.observed.quality["root_mean_squared_error"] < SPEC.thresholds["rmse"].value
    # the quality intervals come from the window's own labelled rows, at the confidence the 2 thresholds need
    assert result.observed.quality_interval_rows == result.observed.labelled_rows
    assert result.observed.quality_confidence == pytest.approx(0.99)
    for metric in ("root_mean_squared_error", "r2_score"):
        low, high = result.observed.quality_intervals[metric]
        assert low <= result.observed.quality[metric] <= high
    assert set(result.observed.drift) == set(SPEC.feature_names)
    assert {c.status for c in result.evaluation.checks} == {"ok"}

    tv = LocalTaskValues(settings.home, healthy["run_id"])
    assert tv.path == settings.home / "runs" / healthy["run_id"] / "task_values.json" and tv.path.is_file()
    observed = tv.get(MONITOR_TASK, "observed")
    assert observed["rows"] == HEALTHY_REQUESTS * ROWS and observed["window_start"] == result.observed.window_start
    assert tv.get(EVALUATE_TASK, "retrain_needed") == "false"
    assert tv.get(EVALUATE_TASK, "health") == "healthy" and tv.get(EVALUATE_TASK, "quality_breach") is False
    assert RETRAIN_TASK not in tv.all()
    assert registry.get_alias(settings, SPEC, "champion").version == world["v1"]
    assert _outbox(settings) == []


# --- 2. idempotent re-run -----------------------------------------------------------------------------

def test_rerun_on_the_same_window_does_nothing_new(world, healthy):
    settings = world["settings"]
    versions, audit, alerts = _version_count(settings), len(read_audit(settings, MODEL)), len(_outbox(settings))
    tv = LocalTaskValues(settings.home, "healthy-rerun")
    again = run_watcher(settings, SPEC, tv)
    assert again.evaluation.health == "handled" and again.skipped == "window already handled"
    assert not again.evaluation.retrain_needed and again.retrain is None
    assert again.observed.window_start == healthy["result"].observed.window_start
    assert "already handled (no retrain (healthy))" in again.evaluation.reasons[0]
    assert tv.get(EVALUATE_TASK, "retrain_needed") == "false"
    assert _version_count(settings) == versions
    assert len(read_audit(settings, MODEL)) == audit
    assert len(_outbox(settings)) == alerts


# --- 3. concept drift -> breach -> retrain -> validate -> promote -> endpoint swap -----------------------

def test_concept_drift_is_caught_retrained_validated_promoted_and_served(world, healthy, drifted):
    settings, handle, v1 = world["settings"], world["handle"], world["v1"]
    result = drifted["result"]
    evaluation = result.evaluation
    assert evaluation.health == "breach" and evaluation.retrain_needed
    assert pd.Timestamp(result.observed.window_start) == (pd.Timestamp(healthy["result"].observed.window_start)
                                                          + pd.Timedelta(days=1))
    assert result.observed.labelled_rows == DRIFT_REQUESTS * ROWS
    quality_breaches = {c.metric for c in evaluation.checks if c.scope == "quality" and c.status == "breach"}
    assert quality_breaches == {"rmse", "r2"}
    for check in (c for c in evaluation.checks if c.scope == "quality"):  # each interval wholly beyond
        low, high = check.interval
        assert (low > check.threshold) if check.direction == "max" else (high < check.threshold)

    retrain = result.retrain
    assert retrain is not None and retrain.promoted, retrain and retrain.reasons
    assert retrain.champion_version == v1 and retrain.challenger_version == v1 + 1
    assert retrain.holdout == "held-out recent labelled traffic" and retrain.training_data == "fresh traffic"
    # Validated on the same holdout as the champion: rebuild it (the drifted window's labelled traffic, its
    # stable-hash holdout share) and score both versions on it; both must reproduce the outcome's metrics.
    from workloads.training.evaluation import evaluate

    fresh = fresh_traffic(settings, SPEC, since=pd.Timestamp(result.observed.window_start))
    holdout = fresh[is_fresh_holdout(fresh, SPEC)].drop(columns=[EXAMPLE_ID_COLUMN])
    assert len(holdout) == retrain.holdout_rows and retrain.fresh_rows == len(fresh) - len(holdout)
    for version, metrics in ((v1, retrain.champion_metrics), (retrain.challenger_version, retrain.challenger_metrics)):
        rescored = evaluate(SPEC, registry.load_model(settings, SPEC, version=version), holdout)
        assert rescored["rmse"] == pytest.approx(metrics["rmse"], rel=1e-9)
        assert rescored["r2"] == pytest.approx(metrics["r2"], rel=1e-9)
    assert retrain.challenger_metrics["rmse"] < SPEC.thresholds["rmse"].value < retrain.champion_metrics["rmse"]
    assert retrain.challenger_metrics["r2"] > SPEC.thresholds["r2"].value > retrain.champion_metrics["r2"]

    assert registry.get_alias(settings, SPEC, "champion").version == retrain.challenger_version
    assert registry.get_alias(settings, SPEC, "previous").version == v1
    assert registry.get_alias(settings, SPEC, "challenger") is None
    audit = read_audit(settings, MODEL)
    assert len(audit) == drifted["audit_before"] + 1
    row = audit.iloc[-1]
    assert (row["action"], row["from_version"], row["to_version"]) == ("promote", str(v1),
                                                                      str(retrain.challenger_version))
    assert '"rmse"' in row["from_metrics"] and '"rmse"' in row["to_metrics"]

    new_alerts = _outbox(settings)[drifted["alerts_before"]:]
    assert [a.kind for a in new_alerts] == ["breach", "promotion"]
    assert "rmse" in new_alerts[0].summary and f"v{retrain.challenger_version} promoted" in new_alerts[1].summary

    tv = LocalTaskValues(settings.home, drifted["run_id"])
    assert tv.get(EVALUATE_TASK, "retrain_needed") == "true" and tv.get(EVALUATE_TASK, "quality_breach") is True
    assert tv.get(RETRAIN_TASK, "promoted") == "true"
    assert tv.get(RETRAIN_TASK, "challenger_version") == retrain.challenger_version

    # The running endpoint (never restarted) picks the new champion up from the alias.
    deadline = time.monotonic() + 30
    while handle.served_version != retrain.challenger_version and time.monotonic() < deadline:
        time.sleep(0.1)
    assert handle.served_version == retrain.challenger_version
    state = httpx.get(f"{handle.url}/serving-endpoints/{SPEC.endpoint_name}", timeout=10).json()
    assert state["config"]["served_entities"][0]["entity_version"] == str(retrain.challenger_version)

    # And the same window again is handled: no second retrain, promotion or alert.
    versions, alerts = _version_count(settings), len(_outbox(settings))
    again = run_watcher(settings, SPEC, LocalTaskValues(settings.home, "drift-rerun"))
    assert again.evaluation.health == "handled" and again.retrain is None
    assert "(promoted)" in again.evaluation.reasons[0]
    assert _version_count(settings) == versions and len(_outbox(settings)) == alerts
    assert len(read_audit(settings, MODEL)) == drifted["audit_before"] + 1


# --- 6. Databricks task values: the run-state directory and a notebook's dbutils ------------------------

_UNSET = object()


class FakeTaskValuesApi:
    """``dbutils.jobs.taskValues`` inside a job run: values per task key; records every call."""

    def __init__(self, store: dict[str, dict]):
        self.store = store
        self.current_task = None
        self.set_calls: list[tuple[str, str, object]] = []
        self.get_calls: list[dict] = []

    def set(self, *, key, value):
        assert self.current_task, "set outside a task"
        self.set_calls.append((self.current_task, key, value))
        self.store.setdefault(self.current_task, {})[key] = value

    def get(self, *, taskKey, key, default=_UNSET, debugValue=_UNSET):
        call = {"taskKey": taskKey, "key": key}
        if default is not _UNSET:
            call["default"] = default
        if debugValue is not _UNSET:
            call["debugValue"] = debugValue
        self.get_calls.append(call)
        if default is None or debugValue is None:
            raise TypeError("default and debugValue cannot be None")  # what dbutils says
        if key in self.store.get(taskKey, {}):
            return self.store[taskKey][key]
        if default is _UNSET:
            raise ValueError(f"no value for task {taskKey!r} key {key!r} and no default")
        return default


class FakeDbutils:
    def __init__(self, store: dict[str, dict] | None = None, task: str | None = None):
        self.jobs = type("Jobs", (), {})()
        self.jobs.taskValues = FakeTaskValuesApi(store if store is not None else {})
        self.jobs.taskValues.current_task = task


def _observed(window_start: str, rmse: float, r2: float) -> dict:
    return ObservedMetrics(
        window_start=window_start, window_end=str(pd.Timestamp(window_start) + pd.Timedelta(days=1)),
        granularity="1 day", rows=400, labelled_rows=400,
        quality={"root_mean_squared_error": rmse, "r2_score": r2},
        drift={f: {"js_distance": 0.01, "population_stability_index": 0.01} for f in SPEC.feature_names},
        # decisive evidence: each interval as narrow as its point estimate, at the confidence 2 thresholds need
        quality_intervals={"root_mean_squared_error": [rmse, rmse], "r2_score": [r2, r2]},
        quality_confidence=0.99, quality_interval_rows=400).to_dict()


@pytest.mark.parametrize(("rmse", "r2", "expected"), [(9.0, 0.1, "true"), (2.0, 0.9, "false")])
def test_evaluate_publishes_retrain_needed_as_a_string_through_dbutils(world, rmse, r2, expected, tmp_path):
    """The evaluate notebook task: it reads what the monitor wheel task left in the run-state directory and sets
    its values there and, for the condition task, as real task values through the notebook's dbutils."""
    settings = world["settings"]
    window = "2031-01-01T00:00:00+00:00" if expected == "true" else "2031-01-02T00:00:00+00:00"
    run_dir = tmp_path / "runs" / "4242"
    DatabricksTaskValues(run_dir, MONITOR_TASK).set("observed", _observed(window, rmse, r2))
    dbutils = FakeDbutils(task=EVALUATE_TASK)
    api = dbutils.jobs.taskValues
    evaluation, observed, skipped = step_evaluate(settings, SPEC, DatabricksTaskValues(run_dir, EVALUATE_TASK, dbutils))
    assert skipped is None and observed.window_start == window
    assert api.get_calls == []  # dbutils' get is notebook-only too; the run state is read instead
    published = {key: value for task, key, value in api.set_calls if task == EVALUATE_TASK}
    # The job's condition_task compares {{tasks.evaluate.values.retrain_needed}} == "true": a string, not a bool.
    assert published["retrain_needed"] == expected and isinstance(published["retrain_needed"], str)
    assert published["health"] == ("breach" if expected == "true" else "healthy")
    assert published["quality_breach"] is (expected == "true")
    assert published["window_start"] == window and published["observed"]["rows"] == 400
    assert evaluation.retrain_needed is (expected == "true")
    assert DatabricksTaskValues(run_dir).get(EVALUATE_TASK, "retrain_needed") == expected


def test_retrain_reads_the_evaluate_task_values_from_the_run_state(world, drifted, tmp_path):
    """The retrain wheel task cannot use dbutils: it reads what evaluate left in the run-state directory."""
    settings = world["settings"]
    observed = drifted["result"].observed
    champion = registry.get_alias(settings, SPEC, "champion").version
    run_dir = tmp_path / "runs" / "4243"
    evaluate = DatabricksTaskValues(run_dir, EVALUATE_TASK)
    for key, value in {"window_start": observed.window_start, "quality_breach": True,
                       "observed": observed.to_dict(), "retrain_needed": "true"}.items():
        evaluate.set(key, value)
    versions = _version_count(settings)
    outcome = step_retrain(settings, SPEC, DatabricksTaskValues(run_dir, RETRAIN_TASK))
    # window_start was honoured (only the drifted window's traffic) and so was quality_breach (fresh data alone).
    assert outcome.training_data == "fresh traffic" and outcome.holdout == "held-out recent labelled traffic"
    assert outcome.holdout_rows == drifted["result"].retrain.holdout_rows
    assert outcome.champion_version == champion and _version_count(settings) == versions + 1
    published = DatabricksTaskValues(run_dir).for_task("x")
    assert published.get(RETRAIN_TASK, "promoted") == ("true" if outcome.promoted else "false")
    assert published.get(RETRAIN_TASK, "challenger_version") == outcome.challenger_version
    assert "retrain requested" not in outcome.summary()
    if not outcome.promoted:  # put the state back as it was for the tests below
        assert registry.get_alias(settings, SPEC, "champion").version == champion


# --- 7. failure -> alert and one line -----------------------------------------------------------------

def test_watcher_failure_alerts_and_the_cli_prints_one_line(tmp_path):
    home = tmp_path / "no-champion"
    home.mkdir()
    proc = subprocess.run([sys.executable, "-m", "workloads.cli", "--home", str(home), "watch", "run", "--model", MODEL],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "has no 'champion' version; train one first" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    failures = read_outbox(home, kind="failure")
    assert len(failures) == 1 and failures[0].model == MODEL and "watcher failed" in failures[0].summary


# --- 8. the CLI, chained like the Databricks job --------------------------------------------------------

def _cli(capsys, *args) -> tuple[int, str]:
    from workloads.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_steps_share_a_run_then_promote_rollback_and_drift(world, drifted, capsys, monkeypatch):
    settings, handle = world["settings"], world["handle"]
    home = str(settings.home)
    monkeypatch.setenv("MLOPS_RUN_ID", "cli-run")
    code, out = _cli(capsys, "--home", home, "watch", "monitor", "--model", MODEL)
    assert code == 0 and "window " in out, out
    code, out = _cli(capsys, "--home", home, "watch", "evaluate", "--model", MODEL, "--force")
    assert code == 0 and "retrain needed: True" in out and "manual trigger (--force)" in out, out
    assert "js_distance [product]" in out  # per-feature scopes are shown (not eaten as rich markup)
    tv = LocalTaskValues(settings.home, "cli-run")
    assert tv.get(MONITOR_TASK, "observed")["window_start"] == drifted["result"].observed.window_start
    assert tv.get(EVALUATE_TASK, "retrain_needed") == "true"
    versions = _version_count(settings)
    code, out = _cli(capsys, "--home", home, "watch", "retrain", "--model", MODEL)
    assert code == 0 and MODEL in out, out
    assert _version_count(settings) == versions + 1
    assert tv.get(RETRAIN_TASK, "promoted") in ("true", "false")
    assert tv.get(RETRAIN_TASK, "challenger_version") == versions + 1

    dev_champion = registry.get_alias(settings, SPEC, "champion")
    code, out = _cli(capsys, "--home", home, "promote", "--model", MODEL, "--from", "dev", "--to", "prod")
    assert code == 0, out
    prod_champion = registry.get_alias(settings.for_env("prod"), SPEC, "champion")
    assert prod_champion.source == f"models:/{settings.registered_model(MODEL)}/{dev_champion.version}"

    previous = registry.get_alias(settings, SPEC, "previous")
    code, out = _cli(capsys, "--home", home, "rollback", "--model", MODEL)
    assert code == 0 and f"v{dev_champion.version} -> v{previous.version}" in out, out
    assert registry.get_alias(settings, SPEC, "champion").version == previous.version
    assert read_audit(settings, MODEL)["action"].iloc[-1] == "rollback"
    assert read_outbox(settings.home, kind="rollback", model=MODEL)

    from workloads.ports.tables import get_tables

    payload = settings.table(SPEC.payload_table)

    def simulated_payload_rows() -> int:
        ids = get_tables(settings).read(payload, columns=["client_request_id"])["client_request_id"]
        return int(ids.fillna("").str.startswith("drift-").sum())

    before = simulated_payload_rows()
    code, out = _cli(capsys, "--home", home, "drift", "simulate", "--model", MODEL, "--kind", "covariate",
                     "--requests", "8", "--url", handle.url)
    assert code == 0 and "8 requests, 40 rows, 0 failed" in out, out
    handle.flush()
    assert simulated_payload_rows() == before + 8
    code, out = _cli(capsys, "--home", home, "drift", "reset", "--model", MODEL)
    assert code == 0 and f"{payload}: {before + 8} simulated rows deleted" in out, out
    assert "2 simulation runs deleted" in out
    assert simulated_payload_rows() == 0
    # The monitor was refreshed at once: its windows count exactly the examples that are left.
    assert "monitor refreshed: " in out and "no longer shows the removed drift" in out.replace("\n", " ")
    from workloads.monitoring.metrics import ALL_MODELS, read_metric_tables
    from workloads.specs import MODEL_ID_COLUMN

    profile, _ = read_metric_tables(settings, SPEC)
    windows = profile[(profile["column_name"] == ":table") & (profile["log_type"] == "INPUT")
                      & profile["slice_key"].isna() & (profile[MODEL_ID_COLUMN] == ALL_MODELS)
                      & (profile["granularity"] == "1 day")]
    processed = get_tables(settings).read(settings.table(SPEC.processed_table))
    assert int(windows["count"].sum()) == len(processed)
    assert not processed["request_id"].astype(str).str.startswith("drift-").any()


def test_the_promotion_was_decided_by_a_paired_comparison_with_its_interval(drifted):
    retrain = drifted["result"].retrain
    assert retrain.promoted and retrain.comparison is not None
    assert retrain.comparison.challenger_wins and retrain.comparison.rows == retrain.holdout_rows
    assert retrain.comparison.rows >= SPEC.promotion_evidence.min_holdout_rows
    assert "95% CI" in retrain.record.reason  # the audit row says how sure the verdict was


def test_a_holdout_too_small_to_compare_keeps_the_champion_and_says_so(world, drifted):
    from workloads.watcher.retraining import retrain_and_validate

    settings = world["settings"]
    champion = registry.get_alias(settings, SPEC, "champion").version
    strict = SPEC.model_copy(update={"promotion_evidence": SPEC.promotion_evidence.model_copy(
        update={"min_holdout_rows": 10**6})})
    outcome = retrain_and_validate(settings, strict, reason="test", quality_breach=True)
    assert not outcome.promoted and outcome.comparison is None
    assert any(r.startswith("not enough data to compare: the ") and "fewer than the 1000000" in r
               for r in outcome.reasons)
    assert registry.get_alias(settings, SPEC, "champion").version == champion
