"""``mlops ui``: a busy port is one clear error at once; SIGTERM/SIGINT stop the MLflow server it started."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fakes import free_port


@pytest.fixture(scope="module")
def store_home(tmp_path_factory):
    """A home with an MLflow store (an empty sqlite store is enough for the UI to start)."""
    import mlflow

    home = tmp_path_factory.mktemp("ui-home")
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    mlflow.search_experiments()  # creates the schema
    return home


def _mlops(home, *args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "workloads.cli", "--home", str(home), "ui", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_a_busy_port_fails_at_once_with_a_non_zero_exit(store_home):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        proc = _mlops(store_home, "--port", str(port))
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is not free" in out and "pass --port N" in out
    assert time.monotonic() - started < 30  # not after the server gave up


def _stop_once_it_answers(proc, url: str, sig: int, boot_s: float) -> None:
    """Wait (bounded) until ``url`` answers, send ``sig`` to the command, and check it exits 0 and nothing is left
    listening at ``url``: the server's whole process group is gone."""
    try:
        deadline = time.monotonic() + boot_s
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail(f"{url} did not answer within {boot_s:.0f} s")
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    time.sleep(0.5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, timeout=2)


def test_sigterm_stops_the_mlflow_server_too(store_home):
    """The real MLflow server (one boot: it takes most of this test); Ctrl-C's SIGINT goes through the same
    supervisor, tested below with a lighter server."""
    port = free_port()
    proc = _mlops(store_home, "--port", str(port))
    _stop_once_it_answers(proc, f"http://127.0.0.1:{port}/health", signal.SIGTERM, boot_s=90)


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_sigint_stops_the_server_group_the_supervisor_started(tmp_path, ignores_sigterm):
    """``mlops ui``'s supervisor (run_until_stopped) on Ctrl-C: its server child and that child's own child (as
    MLflow's workers are) are gone, nothing listens, and the command exits 0; a server ignoring SIGTERM is killed
    after the grace period (shortened here)."""
    port = free_port()
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignores_sigterm else ""
    server = (f"{ignore}import subprocess, sys; subprocess.Popen([sys.executable, '-m', 'http.server', '{port}', "
              f"'--bind', '127.0.0.1']).wait()")  # the listener is a grandchild, as MLflow's worker is
    supervisor = (f"import sys; import workloads.cli.ui as ui; ui.STOP_GRACE_S = 1.0; "
                  f"sys.exit(ui.run_until_stopped([sys.executable, '-c', {server!r}], None, 'started'))")
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, "-c", supervisor], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": root})
    _stop_once_it_answers(proc, f"http://127.0.0.1:{port}/", signal.SIGINT, boot_s=60)
