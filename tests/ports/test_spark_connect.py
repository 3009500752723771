"""The tests' Spark session is a Spark Connect client that refuses what Databricks serverless compute refuses."""

import pytest

from tests.engines import ServerlessUnsupported


def test_the_session_is_a_spark_connect_client_without_jvm_access(spark):
    from pyspark.errors import PySparkAttributeError, PySparkNotImplementedError
    from pyspark.sql.connect.session import SparkSession

    assert isinstance(spark, SparkSession)
    with pytest.raises(PySparkAttributeError, match="JVM_ATTRIBUTE_NOT_SUPPORTED"):
        spark.sparkContext  # noqa: B018 - the access itself is what serverless refuses
    with pytest.raises(PySparkNotImplementedError):
        spark.range(2).rdd  # noqa: B018
    assert [row.id for row in spark.range(2).collect()] == [0, 1]  # the DataFrame API itself works


@pytest.mark.parametrize("call", [
    lambda s: s.range(3).cache(),
    lambda s: s.range(3).persist(),
    lambda s: s.range(3).unpersist(),
    lambda s: s.range(3).createOrReplaceGlobalTempView("g"),
    lambda s: s.catalog.cacheTable("sch.cached"),
    lambda s: s.catalog.clearCache(),
    lambda s: s.sql("CACHE TABLE sch.cached"),
    lambda s: s.sql("  uncache table sch.cached"),
    lambda s: s.sql("REFRESH TABLE sch.cached"),
    lambda s: s.sql("CLEAR CACHE"),
    lambda s: s.sql("CREATE OR REPLACE GLOBAL TEMPORARY VIEW g AS SELECT 1"),
], ids=["cache", "persist", "unpersist", "global_view", "cacheTable", "clearCache", "CACHE_TABLE", "UNCACHE_TABLE",
        "REFRESH_TABLE", "CLEAR_CACHE", "GLOBAL_TEMP_VIEW"])
def test_what_serverless_does_not_support_fails_here(spark, call):
    spark.sql("CREATE TABLE IF NOT EXISTS sch.cached (id BIGINT)")
    with pytest.raises(ServerlessUnsupported, match="serverless"):
        call(spark)



def test_the_local_server_start_is_tried_once_more_only_when_the_jvm_exited():
    from pyspark.errors import PySparkRuntimeError

    from tests.engines import _start_local_server

    class Server:
        def __init__(self, failures):
            self.failures, self.calls = list(failures), 0

        def _start_connect_server(self, master, options):
            self.calls += 1
            if self.failures:
                raise PySparkRuntimeError(errorClass=self.failures.pop(0), messageParameters={})

    once = Server(["JAVA_GATEWAY_EXITED"])
    with pytest.warns(UserWarning, match="did not start .* trying once more"):
        _start_local_server(once, {})
    assert once.calls == 2
    twice = Server(["JAVA_GATEWAY_EXITED", "JAVA_GATEWAY_EXITED"])
    with pytest.raises(PySparkRuntimeError, match="JAVA_GATEWAY_EXITED"), pytest.warns(UserWarning):
        _start_local_server(twice, {})
    assert twice.calls == 2
    other = Server(["SESSION_ALREADY_EXIST"])  # any other failure is not retried
    with pytest.raises(PySparkRuntimeError):
        _start_local_server(other, {})
    assert other.calls == 1
