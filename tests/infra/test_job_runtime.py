"""The job runtime: what the Databricks jobs install resolves against the chosen serverless environment, the
wheel requires exactly that list, and the code the jobs run imports nothing from the local runtime or infra."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.runtime import (
    SERVERLESS_ENVIRONMENT_VERSION,
    job_requirements,
    normalize,
    preinstalled_file,
    preinstalled_packages,
    python_version,
)

ROOT = Path(__file__).resolve().parents[2]


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH; the README's test command installs it (python3 -m pip install uv)")
    return uv


def _resolve(requirements: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``uv pip compile`` of ``requirements`` for the environment's Python, its preinstalled packages pinned."""
    (tmp_path / "requirements.txt").write_text("\n".join(requirements) + "\n")
    pins = [f"{name}=={version}" for name, version in preinstalled_packages().items()]
    (tmp_path / "preinstalled.txt").write_text("\n".join(pins) + "\n")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    return subprocess.run(
        [_uv(), "pip", "compile", "requirements.txt", "--constraints", "preinstalled.txt",
         "--python-version", python_version(), "--python-platform", "x86_64-unknown-linux-gnu",
         "--no-header", "--no-annotate", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)


def _pins(compiled: str) -> dict[str, str]:
    pins = {}
    for line in compiled.splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[normalize(name.strip())] = version.strip()
    return pins


def test_the_environment_data_file_names_its_version_python_and_sources():
    text = preinstalled_file().read_text()
    assert preinstalled_file().name == f"serverless_environment_{SERVERLESS_ENVIRONMENT_VERSION}.txt"
    assert python_version() == "3.12"
    assert "https://learn.microsoft.com/azure/databricks/release-notes/serverless/environment-version/" in text
    packages = preinstalled_packages()
    # What the job runtime leans on must be in the file (else the test below would not constrain it).
    assert {"mlflow-skinny", "databricks-sdk", "numpy", "pandas", "pyarrow", "databricks-connect"} <= set(packages)


def test_the_job_requirements_resolve_without_changing_what_the_environment_preinstalls(tmp_path):
    result = _resolve(job_requirements(), tmp_path)
    assert result.returncode == 0, f"the job runtime does not resolve on serverless environment " \
                                   f"{SERVERLESS_ENVIRONMENT_VERSION}:\n{result.stderr}"
    resolved = _pins(result.stdout)
    for name, version in preinstalled_packages().items():
        if name in resolved:
            assert resolved[name] == version or version.endswith(".*") and resolved[name].startswith(
                version[:-1]), f"{name} would change from the preinstalled {version} to {resolved[name]}"
    # Lean: none of the local runtime's or the infra program's distributions are pulled into a job.
    assert not {"pulumi", "pulumi-databricks", "pulumi-policy", "deltalake", "plotly", "numba", "boto3",
                "mlflow", "sqlalchemy", "alembic", "flask"} & set(resolved)


def test_a_requirement_the_environment_cannot_hold_is_caught(tmp_path):
    """The check can fail: a numpy newer than the preinstalled one is a conflict, named as such."""
    preinstalled = preinstalled_packages()["numpy"]
    major, minor, _ = preinstalled.split(".")
    result = _resolve([*job_requirements(), f"numpy>={major}.{int(minor) + 1}"], tmp_path)
    assert result.returncode != 0
    assert "numpy" in result.stderr and preinstalled in result.stderr


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([_uv(), "build", "--wheel", "--out-dir", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("lakehouse_mlops-*.whl")
    return wheel


def test_the_built_wheel_requires_exactly_the_job_runtime(built_wheel):
    with zipfile.ZipFile(built_wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    requires = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    unconditional = [r for r in requires if "extra ==" not in r]
    assert sorted(unconditional) == sorted(job_requirements())
    extras = {r.split("extra ==", 1)[1].strip().strip("'\"") for r in requires if "extra ==" in r}
    assert extras == {"local", "infra"}


JOB_MODULES = ["workloads.cli", "workloads.unpacking", "workloads.labels", "workloads.batch",
               "workloads.watcher.steps", "workloads.watcher.retraining", "workloads.watcher.evaluation",
               "workloads.training", "workloads.training.generic", "workloads.training.pipeline",
               "workloads.monitoring.refresh", "workloads.monitoring.monitor_api", "workloads.monitoring.metrics",
               "workloads.promotion", "workloads.environments", "workloads.registry",
               "workloads.serving.databricks", "workloads.ports.tables", "workloads.ports.tracking",
               "workloads.ports.task_values", "workloads.alerts"]
JOB_COMMANDS = [["unpack"], ["labels", "ingest"], ["watch", "monitor"], ["watch", "evaluate"],
                ["watch", "retrain"], ["train"], ["batch"], ["promote"]]
_PROBE = r"""
import importlib, sys
for module in sys.argv[1].split(","):
    importlib.import_module(module)
from workloads.cli import main
for command in sys.argv[2].split(";"):
    code = main(["--backend", "databricks", *command.split(), "--help"])
    assert code == 0, (command, code)
print("ok")
"""


def test_the_code_the_jobs_run_works_with_only_the_job_runtime_installed(built_wheel, tmp_path):
    """A fresh environment holding the wheel and its (job) requirements only, as a job installs it: every
    module a job step imports loads and every job command starts. No Pulumi, deltalake, numba, plotly, boto3
    or full mlflow is there to lean on."""
    venv = tmp_path / "job-env"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env,
                   timeout=120)
    # The environment's preinstalled versions (databricks-sdk 0.67, mlflow-skinny 3.8.1, numpy 2.1.3, ...) as
    # constraints: the code runs against what the job really has, not against the newest releases.
    pins = [f"{name}=={version}" for name, version in preinstalled_packages().items()
            if name in ("databricks-sdk", "mlflow-skinny", "numpy", "pandas", "pyarrow", "protobuf", "requests")]
    (tmp_path / "preinstalled.txt").write_text("\n".join(pins) + "\n")
    install = subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                              "--constraints", str(tmp_path / "preinstalled.txt"), str(built_wheel)],
                             capture_output=True, text=True, env=env, timeout=600, check=False)
    assert install.returncode == 0, install.stderr
    listed = subprocess.run([_uv(), "pip", "freeze", "--python", str(venv / "bin" / "python")],
                            capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    installed = {normalize(line.split("==")[0]): line.split("==")[1] for line in listed.splitlines() if "==" in line}
    assert installed["databricks-sdk"] == preinstalled_packages()["databricks-sdk"]
    assert not {"pulumi", "pulumi-databricks", "deltalake", "numba", "plotly", "boto3", "mlflow",
                "sqlalchemy"} & set(installed)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", _PROBE, ",".join(JOB_MODULES),
                            ";".join(" ".join(c) for c in JOB_COMMANDS)],
                           capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
                           env={**env, "MLFLOW_ENABLE_TELEMETRY": "false"})
    assert probe.returncode == 0 and probe.stdout.strip().endswith("ok"), probe.stderr[-3000:]
