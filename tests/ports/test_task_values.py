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


def test_databricks_steps_pass_values_through_the_run_state_directory(home, tmp_path):
    """Wheel tasks cannot use dbutils.jobs.taskValues (notebooks only): each task writes its own file."""
    settings = load_settings(home=home, backend="databricks")
    run_dir = tmp_path / "Volumes" / "mlops_dev" / "bakehouse_ml" / "artifacts" / "runs" / "1234"
    monitor = get_task_values(settings, task_key="monitor", run_dir=run_dir)
    assert isinstance(monitor, DatabricksTaskValues)
    monitor.set("observed", {"rows": 120})
    monitor.set("window_start", "2026-11-26")

    evaluate = get_task_values(settings, task_key="evaluate", run_dir=run_dir)
    assert evaluate.get("monitor", "observed") == {"rows": 120}
    assert evaluate.get("monitor", "absent") is None
    assert evaluate.get("monitor", "absent", default=[]) == []
    assert evaluate.get("retrain", "anything", default="none") == "none"
    assert sorted(p.name for p in run_dir.iterdir()) == ["monitor.json"]
    assert json.loads((run_dir / "monitor.json").read_text()) == {"observed": {"rows": 120},
                                                                  "window_start": "2026-11-26"}
    # A repaired (re-run) task keeps what it set before and overwrites what it sets again.
    again = get_task_values(settings, task_key="monitor", run_dir=run_dir)
    again.set("observed", {"rows": 121})
    assert evaluate.get("monitor", "observed") == {"rows": 121}
    assert evaluate.get("monitor", "window_start") == "2026-11-26"
    assert not (home / "runs").exists()


def test_databricks_needs_a_run_state_directory(home):
    settings = load_settings(home=home, backend="databricks")
    with pytest.raises(TaskValueError, match=r"--run-state DIR .*runs/\{\{job.run_id\}\}"):
        get_task_values(settings, task_key="monitor")


def test_a_notebook_step_also_sets_real_task_values_for_the_condition_task(home, tmp_path):
    """The evaluate notebook hands over its dbutils: the condition task reads the value it sets."""
    from workloads.ports import task_values as port

    dbutils = FakeDbutils()
    port.use_notebook_dbutils(dbutils)
    try:
        values = get_task_values(load_settings(home=home, backend="databricks"), task_key="evaluate",
                                 run_dir=tmp_path / "run")
        values.set("retrain_needed", "true")
        values.set("reasons", ["rmse 9.8 > max 5"])
    finally:
        port.use_notebook_dbutils(None)
    assert dbutils.jobs.taskValues.calls == [("set", {"key": "retrain_needed", "value": "true"}),
                                             ("set", {"key": "reasons", "value": ["rmse 9.8 > max 5"]})]
    assert values.for_task("retrain").get("evaluate", "retrain_needed") == "true"
    # Without a notebook's dbutils (a wheel task), nothing calls dbutils at all.
    plain = DatabricksTaskValues(tmp_path / "run", "retrain")
    plain.set("promoted", "false")
    assert plain.dbutils is None and len(dbutils.jobs.taskValues.calls) == 2


def test_databricks_path_validates_before_writing_or_calling_dbutils(tmp_path):
    dbutils = FakeDbutils()
    values = DatabricksTaskValues(tmp_path / "run", "evaluate", dbutils)
    with pytest.raises(TaskValueError, match="not valid JSON"):
        values.set("k", object())
    with pytest.raises(TaskValueError, match="48 KiB"):
        values.set("k", "x" * (48 * 1024))
    with pytest.raises(TaskValueError, match="no current task"):
        DatabricksTaskValues(tmp_path / "run").set("k", 1)
    assert dbutils.jobs.taskValues.calls == []
    assert not (tmp_path / "run").exists()


class NotebookDbutils(FakeDbutils):
    """A notebook's dbutils as the step notebook uses it: widgets, library restart, task values."""

    def __init__(self, widgets):
        super().__init__()
        self.restarted = 0
        self.widgets = type("widgets", (), {"get": staticmethod(lambda name: widgets[name])})()
        outer = self

        class Library:
            @staticmethod
            def restartPython():
                outer.restarted += 1

        self.library = Library()


def _run_notebook(source: str, dbutils) -> None:
    """Run the notebook's code cells (Jupyter JSON) as Databricks would."""
    for cell in json.loads(source)["cells"]:
        assert cell["cell_type"] == "code"
        code = "".join(cell["source"])
        assert "%pip" not in code and "restartPython" not in code  # the environment installs the wheel
        exec(compile(code, "mlops_step", "exec"), {"dbutils": dbutils})  # noqa: S102 - the notebook under test


def test_the_step_notebook_runs_mlops_and_its_values_reach_the_condition_task(monkeypatch, tmp_path):
    from infra.runtime import step_notebook_source
    from workloads import cli
    from workloads.ports import task_values as port

    run_dir = tmp_path / "runs" / "777"
    args = ["--backend", "databricks", "watch", "evaluate", "--model", "m", "--run-state", str(run_dir)]
    seen = []

    def fake_main(argv):  # what `mlops watch evaluate` publishes, through the port as the step does
        seen.append(argv)
        values = port.get_task_values(load_settings(backend="databricks"), task_key="evaluate", run_dir=run_dir)
        values.set("retrain_needed", "true")
        return 0

    monkeypatch.setattr(cli, "main", fake_main)
    dbutils = NotebookDbutils({"args": json.dumps(args)})
    source = step_notebook_source("/Volumes/c/s/artifacts/wheels/abc/lakehouse_mlops-0.1.0-py3-none-any.whl")
    try:
        _run_notebook(source, dbutils)
    finally:
        port.use_notebook_dbutils(None)
    assert seen == [args] and dbutils.restarted == 0
    assert dbutils.jobs.taskValues.calls == [("set", {"key": "retrain_needed", "value": "true"})]
    assert json.loads((run_dir / "evaluate.json").read_text()) == {"retrain_needed": "true"}
    environment = json.loads(source)["metadata"]["application/vnd.databricks.v1+notebook"]["environmentMetadata"]
    assert environment["dependencies"] == ["/Volumes/c/s/artifacts/wheels/abc/lakehouse_mlops-0.1.0-py3-none-any.whl"]

    monkeypatch.setattr(cli, "main", lambda argv: 1)
    with pytest.raises(RuntimeError, match=r"mlops .*watch evaluate.* failed \(exit code 1\)"):
        _run_notebook(source, NotebookDbutils({"args": json.dumps(args)}))
    port.use_notebook_dbutils(None)
