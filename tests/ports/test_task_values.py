"""Task-values port: the local run-state file and the Databricks ``dbutils.jobs.taskValues`` path."""

import json
import multiprocessing

import pytest

from workloads.ports.task_values import (
    DatabricksTaskValues,
    LocalTaskValues,
    TaskValueError,
    get_task_values,
)
from workloads.settings import load_settings


class FakeTaskValues:
    """Records calls in the real API shape; ``get`` behaves like dbutils inside a job run."""

    def __init__(self):
        self.calls = []
        self.store = {}
        self.current_task = "monitor"

    def set(self, *, key, value):
        self.calls.append(("set", {"key": key, "value": value}))
        self.store[(self.current_task, key)] = value

    def get(self, *, taskKey, key, default=None, debugValue=None):
        kwargs = {"taskKey": taskKey, "key": key}
        if default is not None:
            kwargs["default"] = default
        if debugValue is not None:
            kwargs["debugValue"] = debugValue
        self.calls.append(("get", kwargs))
        if (taskKey, key) in self.store:
            return self.store[(taskKey, key)]
        if default is None:
            raise ValueError(f"No task value found for key {key} in task {taskKey}")
        return default


class FakeDbutils:
    def __init__(self):
        self.jobs = type("jobs", (), {})()
        self.jobs.taskValues = FakeTaskValues()


def test_local_values_pass_between_tasks_of_a_run(settings):
    monitor = get_task_values(settings, run_id="run-1", task_key="monitor")
    monitor.set("metrics", {"rmse": 1.5, "rows": 120})
    monitor.set("window", "2026-11-26T13:00:00Z")

    evaluate = get_task_values(settings, run_id="run-1", task_key="evaluate")
    assert evaluate.get("monitor", "metrics") == {"rmse": 1.5, "rows": 120}
    assert evaluate.get("monitor", "window") == "2026-11-26T13:00:00Z"
    assert evaluate.get("monitor", "missing") is None
    assert evaluate.get("monitor", "missing", default=7) == 7
    assert evaluate.get("retrain", "metrics", default="none") == "none"

    path = settings.home / "runs" / "run-1" / "task_values.json"
    assert json.loads(path.read_text()) == {
        "monitor": {"metrics": {"rmse": 1.5, "rows": 120}, "window": "2026-11-26T13:00:00Z"}
    }
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".task_values.")] == []


def test_runs_are_isolated_and_set_overwrites(settings):
    a = get_task_values(settings, run_id="a", task_key="evaluate")
    b = get_task_values(settings, run_id="b", task_key="evaluate")
    a.set("retrain_needed", True)
    a.set("retrain_needed", False)
    assert a.get("evaluate", "retrain_needed") is False
    assert b.get("evaluate", "retrain_needed") is None


def test_run_and_task_from_environment(settings, monkeypatch):
    monkeypatch.setenv("MLOPS_RUN_ID", "env-run")
    monkeypatch.setenv("MLOPS_TASK_KEY", "monitor")
    values = get_task_values(settings)
    values.set("rows", 3)
    assert isinstance(values, LocalTaskValues)
    assert (settings.home / "runs" / "env-run" / "task_values.json").exists()
    assert values.for_task("evaluate").get("monitor", "rows") == 3


def test_local_default_run_is_manual(settings, monkeypatch):
    monkeypatch.delenv("MLOPS_RUN_ID", raising=False)
    monkeypatch.delenv("MLOPS_TASK_KEY", raising=False)
    values = get_task_values(settings, task_key="monitor")
    values.set("k", 1)
    assert get_task_values(settings).get("monitor", "k") == 1
    assert (settings.home / "runs" / "manual" / "task_values.json").exists()


def test_local_rejects_what_databricks_would(settings, monkeypatch):
    monkeypatch.delenv("MLOPS_TASK_KEY", raising=False)
    no_task = get_task_values(settings, run_id="r")
    with pytest.raises(TaskValueError, match="no current task"):
        no_task.set("k", 1)
    values = no_task.for_task("t")
    with pytest.raises(TaskValueError, match="not valid JSON"):
        values.set("k", {1, 2})
    with pytest.raises(TaskValueError, match="48 KiB"):
        values.set("k", "x" * (48 * 1024))
    with pytest.raises(TaskValueError, match="non-empty"):
        values.set("", 1)
    with pytest.raises(TaskValueError, match="run id"):
        get_task_values(settings, run_id="../escape", task_key="t")
    assert values.get("t", "k") is None


def test_corrupt_run_state_is_a_clear_error(settings):
    values = get_task_values(settings, run_id="r", task_key="t")
    values.path.parent.mkdir(parents=True)
    values.path.write_text("{not json")
    with pytest.raises(TaskValueError, match="corrupt"):
        values.get("t", "k")


def _set_many(home, task, n):
    values = get_task_values(load_settings(home=home), run_id="shared", task_key=task)
    for i in range(n):
        values.set(f"k{i}", i)


def test_concurrent_tasks_do_not_lose_values(settings):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_set_many, args=(str(settings.home), f"task{j}", 15)) for j in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    state = get_task_values(settings, run_id="shared").all()
    assert state == {f"task{j}": {f"k{i}": i for i in range(15)} for j in range(2)}


def test_databricks_path_calls_dbutils_with_documented_keywords(home):
    settings = load_settings(home=home, backend="databricks")
    dbutils = FakeDbutils()
    values = get_task_values(settings, dbutils=dbutils)
    assert isinstance(values, DatabricksTaskValues)

    values.set("retrain_needed", True)
    assert values.get("monitor", "retrain_needed") is True
    assert values.get("monitor", "absent") is None
    assert values.get("monitor", "absent", default=[]) == []
    assert values.get("monitor", "absent", default="fallback") == "fallback"

    assert dbutils.jobs.taskValues.calls == [
        ("set", {"key": "retrain_needed", "value": True}),
        ("get", {"taskKey": "monitor", "key": "retrain_needed"}),
        ("get", {"taskKey": "monitor", "key": "absent"}),
        ("get", {"taskKey": "monitor", "key": "absent", "default": [], "debugValue": []}),
        ("get", {"taskKey": "monitor", "key": "absent", "default": "fallback", "debugValue": "fallback"}),
    ]
    assert not (home / "runs").exists()


def test_databricks_path_validates_before_calling_dbutils(home):
    dbutils = FakeDbutils()
    values = DatabricksTaskValues(dbutils)
    with pytest.raises(TaskValueError, match="not valid JSON"):
        values.set("k", object())
    assert dbutils.jobs.taskValues.calls == []


def test_databricks_get_outside_a_job_is_a_clear_error():
    from databricks.sdk.dbutils import _JobsUtil

    class RemoteDbutils:
        jobs = _JobsUtil()

    values = DatabricksTaskValues(RemoteDbutils())
    with pytest.raises(TaskValueError, match="outside a job run"):
        values.get("monitor", "k")
    assert values.get("monitor", "k", default=5) == 5
