"""A failing job step fails its task: the ``mlops`` entry point called the way a Databricks ``python_wheel_task``
calls it.

Databricks loads the wheel's entry point and calls it as a function, the task's ``parameters`` in ``sys.argv``,
ignoring what it returns; only an exception fails the task. The Databricks CLI's wheel wrapper emulates it
(``entry = [ep for ep in metadata.distribution(pkg).entry_points if ep.name == ...]; entry[0].load()()``,
bundle/python/transform.go in github.com/databricks/cli). ``DATABRICKS_WRAPPER`` below is that call, run in a
fresh interpreter on the task parameters the real program declares (tests/infra's ``dev`` evaluation).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata

import pytest

from infra.components.jobs import ENTRY_POINT, PACKAGE_NAME

DATABRICKS_WRAPPER = """
import json, sys
from importlib import metadata
sys.argv = ["python"] + json.loads(sys.argv[1])
entry = [ep for ep in metadata.distribution(%(package)r).entry_points if ep.name == %(entry)r]
result = entry[0].load()()
print("entry point returned", repr(result))
"""


def task_parameters(evaluation, job: str, task_key: str) -> list[str]:
    tasks = evaluation.get("Job", name=job).inputs["tasks"]
    (task,) = [t for t in tasks if t["taskKey"] == task_key]
    assert task["pythonWheelTask"]["packageName"] == PACKAGE_NAME
    assert task["pythonWheelTask"]["entryPoint"] == ENTRY_POINT
    return list(task["pythonWheelTask"]["parameters"])


def as_databricks_calls(parameters: list[str], monkeypatch, tmp_path, entry: str = ENTRY_POINT):
    """Run ``parameters`` through the Databricks wrapper in a fresh interpreter; (exit code, output)."""
    script = tmp_path / "wrapper.py"
    script.write_text(DATABRICKS_WRAPPER % {"package": PACKAGE_NAME, "entry": entry})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABRICKS_HOST": "http://127.0.0.1:9",
           "DATABRICKS_TOKEN": "dapi-fake", "DATABRICKS_CONFIG_FILE": "/nonexistent/databrickscfg",
           "OMP_NUM_THREADS": "1", "MLFLOW_ENABLE_TELEMETRY": "false", "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run([sys.executable, str(script), json.dumps(parameters)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_wheel_declares_the_entry_point_the_jobs_call():
    (entry,) = [ep for ep in metadata.distribution(PACKAGE_NAME).entry_points if ep.name == ENTRY_POINT]
    assert entry.value == "workloads.cli:run"


@pytest.mark.skipif(shutil.which("java") is None, reason="the Databricks backend's Spark port needs a Java runtime")
def test_a_failing_training_task_ends_in_failure_as_databricks_calls_it(dev, monkeypatch, tmp_path):
    """The training job's task, off Databricks (no Unity Catalog table to read): the step fails, and the entry point
    raises, so Databricks marks the task FAILED and the job's failure notifications fire."""
    parameters = task_parameters(dev, "bakehouse_autolog-training", "train")
    assert parameters[:2] == ["--backend", "databricks"] and "train" in parameters

    code, out = as_databricks_calls(parameters, monkeypatch, tmp_path)
    assert code == 1, out
    assert "error:" in out and "entry point returned" not in out

    # The old entry point (main, which returns 1) is what let such a task end in SUCCESS: the same wrapper exits 0
    # (on a step that fails before it starts Spark: the same error path, without a second Spark start)
    script = tmp_path / "wrapper.py"
    script.write_text(DATABRICKS_WRAPPER.replace("entry[0].load()()", "__import__('workloads.cli').cli.main()")
                      % {"package": PACKAGE_NAME, "entry": ENTRY_POINT})
    failing = [*parameters[:2], "train", "--model", "no_such_model"]
    proc = subprocess.run([sys.executable, str(script), json.dumps(failing)], cwd=tmp_path, timeout=300,
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABRICKS_HOST": "http://127.0.0.1:9",
                               "DATABRICKS_TOKEN": "dapi-fake", "OMP_NUM_THREADS": "1",
                               "SPARK_LOCAL_IP": "127.0.0.1"})
    assert proc.returncode == 0 and "entry point returned 1" in proc.stdout


def test_a_succeeding_call_returns_normally(monkeypatch, tmp_path):
    code, out = as_databricks_calls(["--version"], monkeypatch, tmp_path)
    assert code == 0, out
    assert "entry point returned None" in out


@pytest.mark.parametrize("corrupt,expected", [
    (lambda p: [*p, "--no-such-option"], 2),                                    # a usage error
    (lambda p: ["--backend", "cloud", *p[2:]], 1),                              # an MlopsError
    (lambda p: [*p[:p.index("--model") + 1], "no_such_model"], 1),             # an unknown model spec
])
def test_every_error_path_raises_system_exit_in_process(dev, monkeypatch, capsys, corrupt, expected):
    """In the calling interpreter, as Databricks runs it: ``sys.argv`` holds the (broken) task parameters and the
    entry point raises ``SystemExit`` with the exit code instead of returning it."""
    from workloads.cli import run

    parameters = corrupt(task_parameters(dev, "bakehouse_autolog-batch", "batch"))
    monkeypatch.setattr(sys, "argv", ["python", *parameters])
    with pytest.raises(SystemExit) as raised:
        run()
    assert raised.value.code == expected
    assert capsys.readouterr().err.strip()
