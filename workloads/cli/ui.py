"""``mlops ui``: the MLflow UI on the local store."""

from __future__ import annotations

import os
import subprocess
import sys

import typer

from workloads.cli.common import console, state


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui(
        port: int = typer.Option(5000, help="Port to listen on."),
        host: str = typer.Option("127.0.0.1", help="Address to bind."),
    ) -> None:
        """Open the MLflow UI (experiments, runs, registered models) on the local store."""
        from workloads.errors import MlopsError

        settings = state.settings()
        if settings.backend != "local":
            raise MlopsError("mlops ui shows the local store; on Databricks use the workspace's Experiments page")
        db = settings.home / "mlflow.db"
        if not db.exists():
            raise MlopsError(f"no MLflow store at {db}; run `mlops demo` or `mlops train` first")
        console.print(f"MLflow UI on http://{host}:{port} (store {db}); Ctrl+C to stop")
        # One person browsing a local store: one server process (mlflow's default is 4) and no background
        # job runner (its huey consumers are for server-side GenAI jobs) unless the environment asks for it.
        cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.tracking_uri,
               "--host", host, "--port", str(port), "--workers", "1"]
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
        raise typer.Exit(subprocess.call(cmd, env=env))
