"""The Databricks job runtime, in one place: the serverless environment the jobs run in, what they install,
and the notebook that runs the one step that must set a task value.

- **Environment version.** Every ``python_wheel_task`` runs in a serverless environment whose version fixes the
  Python version and the preinstalled packages ("Each environment version includes a specific Python version and
  a curated set of pre-installed libraries with defined versions", Jobs API ``environments.spec.
  environment_version``; versions and their packages: https://docs.databricks.com/aws/en/release-notes/serverless/
  environment-version/). ``SERVERLESS_ENVIRONMENT_VERSION`` is the one setting; its preinstalled packages are kept
  in ``infra/data/serverless_environment_<version>.txt`` with their source, and
  ``tests/infra/test_job_runtime.py`` resolves the job's requirements against them with uv.
- **What a job installs.** The environment's only dependency is the workloads wheel; the wheel's requirements are
  the project's ``[project].dependencies`` (the lean job runtime; the local runtime and Pulumi are the extras
  ``local`` and ``infra``, never installed into a job). ``job_requirements()`` reads that list, so the resolution
  test and the wheel agree by construction.
- **The step notebook.** Task values can only be set from Python notebooks ("dbutils.jobs.taskValues.set() ...
  can be used only in notebooks with Python selected as the language", https://docs.databricks.com/jobs/
  task-values.html), and the watcher's condition task must read ``retrain_needed``. So the evaluate step runs as a
  ``notebook_task`` of this small notebook. Notebook tasks on serverless take no ``environment_key`` ("For Python
  script, Python wheel, and dbt tasks, environment_key is required for serverless compute",
  https://docs.databricks.com/dev-tools/bundles/resource-examples.html): a serverless notebook runs in its own
  environment, the one its Environment side pane sets (https://docs.databricks.com/aws/en/compute/serverless/
  dependencies). The notebook is therefore deployed as a Jupyter notebook whose metadata holds that environment:
  the same environment version and the same wheel as the wheel tasks (:func:`step_notebook_environment`), not a
  ``%pip install`` that re-resolves from PyPI on every run in whatever the default environment is. It calls the
  same ``mlops`` code with its arguments and hands its ``dbutils`` to the task-values port.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

SERVERLESS_ENVIRONMENT_VERSION = "5"
DATA_DIR = Path(__file__).resolve().parent / "data"
STEP_NOTEBOOK_ARGS = "args"  # the notebook widget holding the step's `mlops` arguments as a JSON list
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def preinstalled_file(version: str = SERVERLESS_ENVIRONMENT_VERSION) -> Path:
    """The data file listing the packages serverless environment ``version`` preinstalls (``name==version``)."""
    return DATA_DIR / f"serverless_environment_{version}.txt"


def preinstalled_packages(version: str = SERVERLESS_ENVIRONMENT_VERSION) -> dict[str, str]:
    """``{normalized name: version}`` of what serverless environment ``version`` preinstalls."""
    packages: dict[str, str] = {}
    for line in preinstalled_file(version).read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.strip())
        if match:
            packages[normalize(match.group(1))] = match.group(2)
    return packages


def python_version(version: str = SERVERLESS_ENVIRONMENT_VERSION) -> str:
    """The Python version (``3.12``) of serverless environment ``version``, from its data file's header."""
    for line in preinstalled_file(version).read_text(encoding="utf-8").splitlines():
        if line.startswith("# python:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"{preinstalled_file(version)} has no '# python: X.Y' header")


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def job_requirements(pyproject: Path | None = None) -> list[str]:
    """The job runtime's requirements: ``[project].dependencies`` of the project (what the wheel requires)."""
    path = pyproject or Path(__file__).resolve().parents[1] / "pyproject.toml"
    return list(tomllib.loads(path.read_text(encoding="utf-8"))["project"]["dependencies"])


STEP_NOTEBOOK_FORMAT = "JUPYTER"  # the workspace import format of step_notebook_source (it carries its environment)


def step_notebook_environment(wheel_path: str) -> dict[str, object]:
    """The step notebook's serverless environment: the one every ``python_wheel_task`` gets (environment version
    ``SERVERLESS_ENVIRONMENT_VERSION``, the wheel as the only dependency), as a notebook's Environment side pane
    stores it (``environment_version``, ``dependencies``: https://docs.databricks.com/aws/en/compute/serverless/
    dependencies; the Jobs API ``Environment`` is "the environment entity used to preserve serverless environment
    side panel", https://docs.databricks.com/api/workspace/jobs/create)."""
    return {"base_environment": "", "environment_version": SERVERLESS_ENVIRONMENT_VERSION,
            "dependencies": [wheel_path]}


def step_notebook_source(wheel_path: str) -> str:
    """A Jupyter notebook (Databricks ``.ipynb`` JSON) that runs one ``mlops`` step in the jobs' environment.

    Its serverless environment is in its metadata (``application/vnd.databricks.v1+notebook`` ->
    ``environmentMetadata``, how Databricks exports a notebook's Environment side pane): environment version 5 with
    the wheel from the artifacts volume, exactly what the ``python_wheel_task``s install, so the notebook task runs on
    the same Python and packages and installs nothing at run time from the internet (the wheel's requirements are
    all preinstalled in that environment: tests/infra/test_job_runtime.py). No ``%pip``, no Python restart.

    The step's arguments come from the ``args`` widget (a JSON list; the job's ``base_parameters``, where dynamic
    value references such as ``{{job.run_id}}`` are substituted). A non-zero exit fails the task.
    """
    code = [
        "# lakehouse-mlops: runs one `mlops` step as a notebook task so that it can set task values",
        "# (dbutils.jobs.taskValues.set is available in Python notebooks only). Generated by the Pulumi",
        "# program (infra/runtime.py); edits here are overwritten by the next deploy.",
        "import json",
        "",
        "from workloads.cli import main",
        "from workloads.ports.task_values import use_notebook_dbutils",
        "",
        "use_notebook_dbutils(dbutils)",
        f"args = json.loads(dbutils.widgets.get({STEP_NOTEBOOK_ARGS!r}))",
        "exit_code = main(args)",
        "if exit_code:",
        "    raise RuntimeError(f\"mlops {' '.join(args)} failed (exit code {exit_code}); see the output above\")",
    ]
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                   "source": [line + "\n" for line in code[:-1]] + [code[-1]]}],
        "metadata": {
            "application/vnd.databricks.v1+notebook": {
                "environmentMetadata": step_notebook_environment(wheel_path),
                "language": "python", "notebookName": "mlops_step", "widgets": {}},
            "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 0,
    }
    return json.dumps(notebook, indent=1)
