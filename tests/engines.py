"""The real Spark engines the tests hold the Spark path to.

- :func:`spark_connect_session`: a Spark Connect client of pyspark's bundled local server, the client API serverless
  jobs use (``sparkContext`` and RDDs are refused by Spark Connect itself), with what serverless compute refuses on top
  of that refused here too (:data:`SERVERLESS_UNSUPPORTED`).

Databricks documents the limits of serverless compute at https://docs.databricks.com/aws/en/compute/serverless/limitations
("Only Spark Connect APIs are supported. Spark RDD APIs are not supported"; "Global temp views are not supported";
the caching limitations: "DataFrame and SQL cache APIs are not supported": ``df.cache()``, ``df.persist()``,
``df.unpersist()``, ``spark.catalog.cacheTable()``, ``spark.catalog.uncacheTable()``, ``spark.catalog.clearCache()``,
``CACHE TABLE``, ``UNCACHE TABLE``, ``REFRESH TABLE``, ``CLEAR CACHE``). pyspark's local Spark Connect server allows
the caching and global-view ones, so the session these tests use refuses them as serverless would.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import pytest


class ServerlessUnsupported(RuntimeError):
    """A call that Databricks serverless compute does not support."""


# (class path, attribute) -> what the serverless limitations page says about it
SERVERLESS_UNSUPPORTED = {
    ("pyspark.sql.connect.dataframe.DataFrame", "cache"): "DataFrame cache APIs are not supported",
    ("pyspark.sql.connect.dataframe.DataFrame", "persist"): "DataFrame cache APIs are not supported",
    ("pyspark.sql.connect.dataframe.DataFrame", "unpersist"): "DataFrame cache APIs are not supported",
    ("pyspark.sql.connect.dataframe.DataFrame", "createGlobalTempView"): "global temp views are not supported",
    ("pyspark.sql.connect.dataframe.DataFrame", "createOrReplaceGlobalTempView"):
        "global temp views are not supported",
    ("pyspark.sql.connect.catalog.Catalog", "cacheTable"): "SQL cache APIs are not supported",
    ("pyspark.sql.connect.catalog.Catalog", "uncacheTable"): "SQL cache APIs are not supported",
    ("pyspark.sql.connect.catalog.Catalog", "clearCache"): "SQL cache APIs are not supported",
}
# SQL statements serverless refuses (the caching limitations and global temp views)
SERVERLESS_UNSUPPORTED_SQL = re.compile(
    r"^\s*(CACHE\s+(LAZY\s+)?TABLE|UNCACHE\s+TABLE|REFRESH\s+TABLE|CLEAR\s+CACHE|"
    r"CREATE\s+(OR\s+REPLACE\s+)?GLOBAL\s+TEMP)", re.IGNORECASE)
LIMITATIONS = "https://docs.databricks.com/aws/en/compute/serverless/limitations"


def _refuse(what: str, reason: str):
    def refused(*args, **kwargs):
        raise ServerlessUnsupported(f"{what}: {reason} on Databricks serverless compute ({LIMITATIONS})")

    return refused


def forbid_serverless_unsupported(patcher: pytest.MonkeyPatch) -> None:
    """Make the Spark Connect client refuse what serverless compute refuses (see :data:`SERVERLESS_UNSUPPORTED`)."""
    import importlib

    from pyspark.sql.connect.session import SparkSession

    for (class_path, attribute), reason in SERVERLESS_UNSUPPORTED.items():
        module, name = class_path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        patcher.setattr(cls, attribute, _refuse(f"{name}.{attribute}", reason))
    real_sql = SparkSession.sql

    def sql(self, sqlQuery, *args, **kwargs):
        match = SERVERLESS_UNSUPPORTED_SQL.match(sqlQuery)
        if match:
            _refuse(" ".join(match.group(1).upper().split()), "SQL cache commands and global temp views are not "
                    "supported")()
        return real_sql(self, sqlQuery, *args, **kwargs)

    patcher.setattr(SparkSession, "sql", sql)


def spark_connect_session(warehouse: str):
    """A Spark Connect session on pyspark's bundled local server (``remote("local[2]")``; it needs Java).

    Args:
        warehouse: the directory of the server's managed tables.

    Returns:
        A ``pyspark.sql.connect.session.SparkSession``; skips the test when no Java runtime is installed.
    """
    if shutil.which("java") is None:
        pytest.skip("pyspark's local Spark Connect server needs a Java runtime (apt-get install default-jre-headless)")
    from pyspark.sql import SparkSession

    # The server (and the Python workers it forks for UDFs) keeps the environment it starts with: not the MLflow
    # store or home of whichever test happens to start it (a UDF loading a model must use its own test's registry).
    started_by = {k: os.environ.pop(k) for k in list(os.environ)
                  if k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY", "MLOPS_"))}
    try:
        return _local_connect_session(SparkSession, warehouse)
    finally:
        os.environ.update(started_by)


def _local_connect_session(SparkSession, warehouse: str):
    """Start pyspark's local Spark Connect server on a port the OS picks and open a new session on it.

    Not ``builder.remote("local[2]").getOrCreate()``: that returns whichever Spark Connect session the process made
    first (the pysail fixture's, when a Delta test ran earlier) and binds the fixed port 15002.
    """
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    options = {"spark.sql.warehouse.dir": warehouse,
               "spark.ui.enabled": "false",
               "spark.sql.session.timeZone": "UTC",
               "spark.sql.shuffle.partitions": "2",
               # a fresh Python worker per task, as serverless isolates UDFs: no state (an MLflow tracking URI set
               # by an earlier UDF) leaks from one test's UDF into another's
               "spark.python.worker.reuse": "false",
               # ...forked from a daemon that has imported MLflow and scikit-learn once (tests/spark_worker_daemon.py)
               "spark.python.daemon.module": "tests.spark_worker_daemon",
               "spark.connect.grpc.binding.address": "127.0.0.1",
               "spark.connect.grpc.binding.port": "0"}
    # the server is a classic SparkContext in this process: pyspark refuses to make one once the process is marked
    # as a Spark Connect client (the pysail fixture may have done that already)
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    # the Python workers find the daemon module (tests.spark_worker_daemon) from the repository root
    root = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    _start_local_server(ConnectSession, options)
    jvm = SparkSession._instantiatedSession._jvm
    service = getattr(getattr(jvm, "org.apache.spark.sql.connect.service.SparkConnectService$"), "MODULE$")
    port = service.localPort()
    # as the builder marks a Spark Connect process: pyspark's functions (udf, pandas_udf) then build Connect columns
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    session = ConnectSession.builder.remote(f"sc://localhost:{port}").create()  # local creds + token
    for key in ("spark.sql.session.timeZone", "spark.sql.shuffle.partitions"):  # session (runtime) settings
        session.conf.set(key, options[key])
    # The workspace's session, as serverless gives a job: what the workloads' ``SparkSession.builder.getOrCreate()``
    # returns (pyspark's builder goes to the active Spark Connect session when SPARK_LOCAL_REMOTE is set), even when
    # the pysail fixture's session was made first.
    os.environ["SPARK_LOCAL_REMOTE"] = "1"
    with ConnectSession._lock:
        ConnectSession._default_session = session
    ConnectSession._active_session.session = session
    return session


def _start_local_server(ConnectSession, options: dict) -> None:
    """Start pyspark's local Spark Connect server (a JVM through spark-submit); one more try when the JVM exits before
    it answers. Seen once in many runs, on a loaded 2-core machine with a pysail gRPC client open in the process: the
    JVM exited without a word ("Java gateway process exited before sending its port number"); the retry says so."""
    from pyspark.errors import PySparkRuntimeError

    for attempt in (1, 2):
        try:
            ConnectSession._start_connect_server("local[2]", dict(options))  # its SparkContext takes them all
            return
        except PySparkRuntimeError as error:
            if attempt == 2 or error.getCondition() != "JAVA_GATEWAY_EXITED":
                raise
            warnings.warn(f"pyspark's local Spark Connect server did not start ({error}); trying once more",
                          stacklevel=2)


def analyzed_plan(frame) -> str:
    """The analyzed logical plan of a Spark Connect DataFrame, as the server explains it (``explain(extended=True)``);
    it names the tables a plan reads and shows a ``LocalRelation`` for rows shipped from the client."""
    return frame._explain_string(extended=True)


# --- pysail: a Spark Connect server on real Delta tables (delta-rs) -------------------------------------------------

SAIL_PROJECT = "tests/engines_sail"  # its own locked environment: pysail 0.7.2 runs UDFs with PySpark 4.2 only
SAIL_CATALOGS = ("mlops_dev", "mlops_prod", "samples", "spark_catalog")


def start_sail_server(root, warehouse: str):
    """Start pysail's Spark Connect server (its own environment, synced from ``tests/engines_sail/uv.lock`` on first
    use) on a port the OS picks; returns ``(process, port)``. The server stops when the process's stdin closes.

    Args:
        root: the repository root (where ``tests/engines_sail`` is).
        warehouse: unused by the server itself; managed tables go to the session's ``spark.sql.warehouse.dir``.
    """
    import subprocess

    catalogs = ", ".join(f'{{name="{c}", type="memory", initial_database=["default"]}}' for c in SAIL_CATALOGS)
    env = {**os.environ, "SAIL_CATALOG__LIST": f"[{catalogs}]", "SAIL_CATALOG__DEFAULT_CATALOG": "spark_catalog",
           "UV_COMPILE_BYTECODE": "1"}
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(["uv", "run", "--locked", "--project", SAIL_PROJECT, "python",
                                f"{SAIL_PROJECT}/serve.py"], cwd=root, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # blocks until the server listens (or the environment failed to sync)
    if not line.startswith("port "):
        process.kill()
        raise RuntimeError(f"the pysail server did not start (exit {process.wait()}); see its output above")
    return process, int(line.split()[1])


def sail_session(port: int, warehouse: str):
    """A Spark Connect session on the pysail server: Delta is the default format, managed tables under
    ``warehouse`` (an absolute path)."""
    from pyspark.sql.connect.client.core import DefaultChannelBuilder
    from pyspark.sql.connect.session import SparkSession

    class PlainChannel(DefaultChannelBuilder):
        """No token: pyspark's local Spark Connect server (the spark fixture) puts its token in the environment,
        which every later client would send, and a token makes the client insist on TLS."""

        @property
        def token(self):
            return None

    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"  # pyspark's functions build Spark Connect columns in this process
    session = SparkSession.builder.channelBuilder(PlainChannel(f"sc://127.0.0.1:{port}")).create()
    session.conf.set("spark.sql.sources.default", "delta")
    session.conf.set("spark.sql.warehouse.dir", warehouse)
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


def sail_tables(session):
    """The Spark tables port on pysail: the port itself, except its narrow Databricks-only functions (each held to
    the documentation by tests/ports/test_spark_contracts.py), answered here through the table's own Delta log."""
    from deltalake import DeltaTable

    from workloads.ports.tables import SparkTables

    class SailTables(SparkTables):
        def _location(self, name):
            rows = self.spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
            return next(r["data_type"] for r in rows if r["col_name"] == "Location")

        def version(self, name):  # DESCRIBE HISTORY: not in pysail
            self._require(name)
            return int(DeltaTable(self._location(name)).version())

        def statement_metrics(self, name, statement, columns):  # pysail answers one `count`: use the commit's
            before = self.version(name)
            self.spark.sql(statement).collect()
            table = DeltaTable(self._location(name))
            metrics = table.history(1)[0].get("operationMetrics", {}) if table.version() > before else {}
            inserted = int(metrics.get("numTargetRowsInserted", 0))
            updated = int(metrics.get("numTargetRowsUpdated", 0))
            deleted = int(metrics.get("numTargetRowsDeleted", metrics.get("numDeletedRows", 0)))
            found = {"num_inserted_rows": inserted, "num_updated_rows": updated, "num_deleted_rows": deleted,
                     "num_affected_rows": inserted + updated + deleted}
            return {c: found[c] for c in columns}

        def _change_data_feed(self, name):  # SHOW TBLPROPERTIES and the change data feed: not in pysail
            return False

        def set_table_properties(self, name, properties):  # no change data feed in pysail: not set
            return None

        def idempotent_append(self, writer, name, app_id, version):  # pysail records no txn: a plain append
            # pysail 0.7.2 resolves a plain append's columns lower-cased against the table ("No field named
            # paymentmethod" for a table with paymentMethod); with mergeSchema it matches them as written. The port
            # has already refused any column the declared table lacks (_require_declared_columns), so no column can
            # be added here: this is the engine's workaround, not schema evolution.
            writer.option("mergeSchema", "true").saveAsTable(name)

    return SailTables(session)
