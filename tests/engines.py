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

import re
import shutil

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

    return (SparkSession.builder.remote("local[2]").appName("mlops-tests")
            .config("spark.sql.warehouse.dir", warehouse)
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "2")
            .getOrCreate())


def analyzed_plan(frame) -> str:
    """The analyzed logical plan of a Spark Connect DataFrame, as the server explains it (``explain(extended=True)``);
    it names the tables a plan reads and shows a ``LocalRelation`` for rows shipped from the client."""
    return frame._explain_string(extended=True)
