"""Benchmark: the local endpoint WITH inference-table logging vs ``mlflow models serve`` (no logging).

Same registered model, same machine, same client, one run: each server runs as its own process
(``mlops serve`` / ``mlflow models serve --env-manager local``), both single uvicorn workers on
127.0.0.1; a bounded number of requests is sent with keep-alive connections from a few client threads.
Reported per server and request size (1 row, 100 rows): requests/s, p50 and p99 latency, and the ratios
local/mlflow side by side.

    uv run python tests/benchmarks/bench_serving.py [--quick] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

MODEL = "bakehouse_autolog"
console = Console(width=150)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train(home: Path) -> tuple[str, object]:
    """Register a small bakehouse model as champion in ``home``; returns (model uri, feature frame)."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from workloads import registry
    from workloads.data import roles
    from workloads.data.bakehouse import generate
    from workloads.data.features import build_features
    from workloads.ports.tracking import configure_tracking, ensure_experiment
    from workloads.settings import load_settings
    from workloads.specs import load_spec

    settings = load_settings(home=home)
    spec = load_spec(MODEL)
    parts = roles.split(build_features(generate(seed=42)), spec)
    train, holdout = parts.training, parts.holdout
    categorical = [c.name for c in spec.features if c.is_categorical]
    numeric = [c.name for c in spec.features if not c.is_categorical]
    pre = ColumnTransformer([
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), categorical),
        ("num", "passthrough", numeric)])
    model = Pipeline([("pre", pre), ("model", HistGradientBoostingRegressor(max_iter=50))])
    x = train[spec.feature_names]
    model.fit(x, train["quantity"])
    configure_tracking(settings)
    ensure_experiment(settings, "bench-serving")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                        pip_requirements=["scikit-learn"],
                                        signature=infer_signature(x.head(50), model.predict(x.head(50))))
    version = registry.register(settings, spec, info.model_uri)
    registry.set_alias(settings, spec, registry.CHAMPION, version)
    return registry.model_uri(settings, spec, version=version), holdout[spec.feature_names]


def _wait(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early: {process.stderr.read().decode()[-1500:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def _run(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, np.ndarray, int]:
    """Send every body once over ``concurrency`` keep-alive clients; returns (seconds, latencies, failures)."""
    latencies = np.zeros(len(bodies))
    failures = [0]
    next_index = [0]
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=60, headers={"content-type": "application/json"}) as client:
            while True:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= len(bodies):
                    return
                start = time.perf_counter()
                response = client.post(url, content=bodies[i])
                latencies[i] = time.perf_counter() - start
                if response.status_code != 200:
                    with lock:
                        failures[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, failures[0]


def _bodies(frame, rows: int, count: int, with_id: bool) -> list[bytes]:
    rng = np.random.default_rng(rows)
    bodies = []
    for i in range(count):
        sample = frame.iloc[rng.integers(0, len(frame), size=rows)]
        body = {"dataframe_split": json.loads(sample.to_json(orient="split", index=False))}
        if with_id:
            body["client_request_id"] = f"bench-{rows}-{i}"
        bodies.append(json.dumps(body).encode())
    return bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer requests (a smoke run).")
    parser.add_argument("--concurrency", type=int, default=4, help="Client threads (keep-alive connections).")
    parser.add_argument("--fsync", action="store_true",
                        help="Also run the local endpoint with --fsync (power-loss durability) as a third server.")
    args = parser.parse_args(argv)
    counts = {1: 300, 100: 100} if args.quick else {1: 2000, 100: 500}
    warmup = 30

    home = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = {**os.environ, "MLOPS_HOME": str(home), "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "true"}
    processes: list[subprocess.Popen] = []
    try:
        with console.status("training and registering the model"):
            uri, frame = _train(home)
        from workloads.settings import load_settings

        settings = load_settings(home=home)
        env["MLFLOW_TRACKING_URI"] = env["MLFLOW_REGISTRY_URI"] = settings.tracking_uri
        local_port, mlflow_port = _free_port(), _free_port()
        local = subprocess.Popen([sys.executable, "-m", "workloads.cli", "serve", "--model", MODEL,
                                  "--port", str(local_port)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        processes.append(local)
        mlflow_serve = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", uri,
                                         "--env-manager", "local", "--host", "127.0.0.1", "-p", str(mlflow_port)],
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append(mlflow_serve)
        endpoint = MODEL.replace("_", "-")
        fsync_home = home / "fsync-home"
        if args.fsync:
            fsync_home.mkdir()
            shutil.copy2(home / "mlflow.db", fsync_home / "mlflow.db")
            fsync_port = _free_port()
            fsync_server = subprocess.Popen([sys.executable, "-m", "workloads.cli", "serve", "--model", MODEL,
                                             "--port", str(fsync_port), "--fsync"],
                                            env={**env, "MLOPS_HOME": str(fsync_home)},
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            processes.append(fsync_server)
        with console.status("starting the servers"):
            _wait(f"http://127.0.0.1:{local_port}/ping", local)
            _wait(f"http://127.0.0.1:{mlflow_port}/ping", mlflow_serve)
            if args.fsync:
                _wait(f"http://127.0.0.1:{fsync_port}/ping", fsync_server)
        targets = {
            "local endpoint + logging": (f"http://127.0.0.1:{local_port}/serving-endpoints/{endpoint}/invocations",
                                         True),
            "mlflow models serve": (f"http://127.0.0.1:{mlflow_port}/invocations", False),
        }
        if args.fsync:
            targets["local endpoint + logging, fsync"] = (
                f"http://127.0.0.1:{fsync_port}/serving-endpoints/{endpoint}/invocations", True)
        results: dict[tuple[str, int], dict] = {}
        rounds = 4  # alternate the servers in rounds so a load change on the shared machine hits both alike
        for rows, count in counts.items():
            per_round = count // rounds
            samples = {name: ([], [0.0], [0]) for name in targets}
            for name, (url, with_id) in targets.items():
                _run(url, _bodies(frame, rows, warmup, with_id), args.concurrency)
            for r in range(rounds):
                for name, (url, with_id) in targets.items():
                    with console.status(f"{name}: round {r + 1}/{rounds}, {per_round} requests of {rows} row(s)"):
                        seconds, latencies, failures = _run(url, _bodies(frame, rows, per_round, with_id),
                                                            args.concurrency)
                    samples[name][0].append(latencies)
                    samples[name][1][0] += seconds
                    samples[name][2][0] += failures
            for name, (latencies, seconds, failures) in samples.items():
                every = np.concatenate(latencies)
                results[(name, rows)] = {"rps": len(every) / seconds[0], "p50": np.percentile(every, 50) * 1000,
                                         "p99": np.percentile(every, 99) * 1000, "failures": failures[0],
                                         "count": len(every)}

        table = Table(title=f"Serving benchmark (concurrency {args.concurrency}, loopback, same model)")
        for column in ("rows/request", "server", "requests", "failed", "req/s", "p50 ms", "p99 ms",
                       "req/s ratio local/mlflow", "p99 ratio local/mlflow"):
            table.add_column(column, justify="right" if column not in ("server",) else "left")
        names = list(targets)
        for rows in counts:
            base = results[(names[1], rows)]
            for name in names:
                r = results[(name, rows)]
                is_local = name != names[1]
                table.add_row(str(rows), name, str(r["count"]), str(r["failures"]), f"{r['rps']:.0f}",
                              f"{r['p50']:.1f}", f"{r['p99']:.1f}",
                              f"{r['rps'] / base['rps']:.2f}" if is_local else "",
                              f"{r['p99'] / base['p99']:.2f}" if is_local else "")
        console.print(table)

        local.terminate()
        local.wait(timeout=60)
        from workloads.ports.tables import get_tables
        from workloads.specs import load_spec

        logged = get_tables(settings).read(settings.table(load_spec(MODEL).payload_table),
                                           columns=["client_request_id"])
        expected = sum(r["count"] for (n, _), r in results.items() if n == names[0]) + warmup * len(counts)
        console.print(f"payload rows logged by the local endpoint: {len(logged)} (requests sent: {expected})")
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
