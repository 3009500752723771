"""Test-wide setup: telemetry off, and every test that asks for ``home`` gets its own temporary home."""

import os

import pytest

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # see workloads/cli: OpenMP threads spin on a loaded machine


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group markers set here
def pytest_collection_modifyitems(config, items):
    """The ``spark`` marker is exactly the tests that use the ``spark`` fixture (directly or through another fixture):
    derived here, so a Spark test cannot go unmarked; a test marked ``spark`` without using Spark is a usage error."""
    wrong = [item.nodeid for item in items
             if item.get_closest_marker("spark") is not None and "spark" not in item.fixturenames]
    if wrong:
        raise pytest.UsageError("marked spark but not using the spark fixture (the marker is derived from the "
                                "fixture; remove it): " + ", ".join(wrong))
    for item in items:
        if "spark" in item.fixturenames:
            item.add_marker(pytest.mark.spark)
    _group_for_workers(items)


# Session fixtures that cost seconds to build (a JVM, a server, trainings): the modules using one share a worker.
SHARED_ON_ONE_WORKER = ("spark", "sail", "trained")


def _group_for_workers(items):
    """Which tests share a pytest-xdist worker (``--dist=loadgroup``, pyproject's addopts): a module's tests stay
    together, so its module-scoped fixtures (a trained home, say) are built once; and the modules using one of
    :data:`SHARED_ON_ONE_WORKER` (the Spark Connect server, the pysail server, the trained home of tests/foundation)
    join one group, so each is built once per run, not once per worker. Cheap session fixtures are built per worker."""
    modules = {}  # module path -> its items
    users = {name: set() for name in SHARED_ON_ONE_WORKER}  # shared fixture -> modules using it
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        modules.setdefault(module, []).append(item)
        for name in SHARED_ON_ONE_WORKER:
            if name in item.fixturenames:
                users[name].add(module)
    group = {module: module for module in modules}

    def root(module):
        while group[module] != module:
            module = group[module]
        return module

    for using in users.values():
        if using:
            first, *rest = sorted(using)
            for module in rest:
                group[root(module)] = root(first)
    for module, module_items in modules.items():
        for item in module_items:
            item.add_marker(pytest.mark.xdist_group(root(module)))


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


def make_trained_home(path, models=("bakehouse_large_order",), reference_date="2026-11-01"):
    """Generate bakehouse data under ``path`` and train ``models``; returns (settings, {model: TrainResult})."""
    from workloads.data.bakehouse import generate
    from workloads.data.features import write_bakehouse
    from workloads.settings import load_settings
    from workloads.specs import load_spec
    from workloads.training import train_model

    settings = load_settings(home=path)
    write_bakehouse(settings, generate(seed=42, reference_date=reference_date))
    return settings, {name: train_model(settings, load_spec(name)) for name in models}


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One Spark Connect session for the whole run: a client of pyspark's local Spark Connect server, the client API
    serverless jobs use, refusing what serverless refuses (tests/engines.py). Its JVM start costs seconds."""
    from tests.engines import forbid_serverless_unsupported, spark_connect_session

    session = spark_connect_session(str(tmp_path_factory.mktemp("spark-warehouse")))
    patcher = pytest.MonkeyPatch()
    forbid_serverless_unsupported(patcher)
    session.sql("CREATE DATABASE IF NOT EXISTS sch")
    yield session
    patcher.undo()
    session.stop()


@pytest.fixture(scope="session")
def sail(tmp_path_factory, request):
    """A Spark Connect session on pysail's server: real Delta tables (delta-rs) behind the Spark Connect client, with
    the catalogs mlops_dev, mlops_prod, samples and spark_catalog (tests/engines.py). No Java needed."""
    from tests.engines import sail_session, start_sail_server

    warehouse = str(tmp_path_factory.mktemp("sail-warehouse"))
    process, port = start_sail_server(request.config.rootpath, warehouse)
    session = sail_session(port, warehouse)
    yield session
    session.client.close()  # not stop(): with pyspark's local server running, stop() would stop that server too
    process.stdin.close()
    process.wait(timeout=30)


@pytest.fixture
def driver_rows(monkeypatch):
    """``(call, rows)`` for every ``DataFrame.collect``/``toPandas`` while ``driver_rows.on`` is true: the rows each
    brought to the driver (a ``toPandas`` that collects internally counts once)."""
    from pyspark.sql.connect.dataframe import DataFrame

    class Recorder(list):
        on = False

    seen = Recorder()
    real_collect, real_to_pandas = DataFrame.collect, DataFrame.toPandas

    def collect(self):
        rows = real_collect(self)
        if seen.on:
            seen.append(("collect", len(rows)))
        return rows

    def to_pandas(self):
        was, seen.on = seen.on, False
        try:
            frame = real_to_pandas(self)
        finally:
            seen.on = was
        if seen.on:
            seen.append(("toPandas", len(frame)))
        return frame

    monkeypatch.setattr(DataFrame, "collect", collect)
    monkeypatch.setattr(DataFrame, "toPandas", to_pandas)
    return seen
