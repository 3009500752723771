"""Test-wide setup: telemetry off, and every test that asks for ``home`` gets its own temporary home."""

import os

import pytest

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh local home; ``MLOPS_HOME`` points at it for code that reads settings from the environment."""
    path = tmp_path / "mlops-home"
    path.mkdir()
    monkeypatch.setenv("MLOPS_HOME", str(path))
    monkeypatch.delenv("MLOPS_BACKEND", raising=False)
    monkeypatch.delenv("MLOPS_CATALOG", raising=False)
    monkeypatch.delenv("MLOPS_ENV", raising=False)
    return path


@pytest.fixture
def settings(home):
    from workloads.settings import load_settings

    return load_settings(home=home)
