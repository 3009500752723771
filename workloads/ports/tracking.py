"""Tracking and registry port: MLflow, local sqlite store or Databricks (``databricks`` / ``databricks-uc``)."""

from __future__ import annotations

import os

from workloads.settings import Settings


def configure_tracking(settings: Settings) -> str:
    """Point MLflow at the configured tracking and registry backends; returns the tracking URI."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    if settings.backend == "local":
        settings.home.mkdir(parents=True, exist_ok=True)
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return settings.tracking_uri


def experiment_location(settings: Settings, experiment: str) -> str:
    """Experiment name on the backend (workspace path on Databricks)."""
    if settings.backend == "databricks":
        return f"/Shared/lakehouse-mlops/{settings.env}/{experiment}"
    return experiment


def ensure_experiment(settings: Settings, experiment: str) -> str:
    """Create (with a local artifact location under ``<home>``) or fetch an experiment; returns its id."""
    import mlflow

    name = experiment_location(settings, experiment)
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        mlflow.set_experiment(name)
        return existing.experiment_id
    if settings.backend == "local":
        exp_id = mlflow.create_experiment(name, artifact_location=(settings.artifacts_dir / name).resolve().as_uri())
    else:
        exp_id = mlflow.create_experiment(name)
    mlflow.set_experiment(name)
    return exp_id
