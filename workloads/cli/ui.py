"""``mlops ui``: the MLflow UI on the local store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

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
        _check_port_free(host, port)
        # One person browsing a local store: one server process (mlflow's default is 4) and no background
        # job runner (its huey consumers are for server-side GenAI jobs) unless the environment asks for it.
        cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.tracking_uri,
               "--host", host, "--port", str(port), "--workers", "1"]
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
        raise typer.Exit(run_until_stopped(cmd, env, f"MLflow UI on http://{host}:{port} (store {db}); "
                                                      "Ctrl+C to stop"))


def _check_port_free(host: str, port: int) -> None:
    from workloads.errors import MlopsError

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise MlopsError(f"port {port} on {host} is not free ({exc.strerror}); pass --port N") from None


STOP_GRACE_S = 10.0  # how long a stopped server's group has to exit on SIGTERM before SIGKILL


def run_until_stopped(cmd: list[str], env: dict, banner: str) -> int:
    """Run a server child in its own process group until it exits or this process gets SIGTERM/SIGINT, which
    stop the whole group (the server and its workers) within a bounded wait. Returns the exit code: the child's,
    0 after a requested stop."""
    child = subprocess.Popen(cmd, env=env, start_new_session=True)
    stopping: dict[str, float | None] = {"deadline": None}

    def stop(signum, frame) -> None:
        # Only signal here: the handler runs while the loop below waits on the child, and a second wait from inside
        # the handler could not reap it (the child's wait lock is held) and would always sit out the grace period.
        if stopping["deadline"] is None:
            stopping["deadline"] = time.monotonic() + STOP_GRACE_S
            _signal_group(child, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        console.print(banner)
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stopping["deadline"] is not None and time.monotonic() > stopping["deadline"]:
                    _signal_group(child, signal.SIGKILL)  # a server that ignored SIGTERM
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(child)
    if stopping["deadline"] is not None:
        return 0
    if code != 0:
        console.print(f"[red]the server exited with code {code}[/]")
    return code or 0


def _signal_group(child: subprocess.Popen, sig: int) -> bool:
    """Send ``sig`` to the child's process group; False when the group is gone."""
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:
        return False
    return True


def _stop_group(child: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    if not _signal_group(child, signal.SIGTERM):
        return
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(child.pid, signal.SIGKILL)  # workers that ignored SIGTERM
    except ProcessLookupError:
        pass
