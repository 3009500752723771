"""The Databricks labels path keeps traffic in Spark: the labels are the MERGE's DataFrame source, counts are
aggregates, and nothing traffic-sized reaches the driver.

Local pyspark has no Delta, so a thin session wrapper answers the two ``MERGE INTO`` statements the port issues
(the conditional label update and the pending-labels delete) with plain Spark SQL on real tables, after recording
their text; everything else (the reads, the dedupe window, the joins, the aggregates) runs in the real local Spark.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pandas as pd
import pytest

from tests.engines import analyzed_plan
from tests.fakes import LocalSparkStandIn
from tests.serving.test_labels_merge import DAY0, SPEC, labels, processed_rows
from workloads.labels import REQUEST_TIME_SLACK, ingest_labels, pending_labels_table, record_labels
from workloads.ports.tables import SparkTables

MERGE = re.compile(r"MERGE INTO (\S+) AS t USING (.+) AS s ON (.+?) WHEN MATCHED (?:AND \((.+)\) )?THEN "
                   r"(UPDATE SET (.+)|DELETE)$")


class MergeOnLocalSpark(LocalSparkStandIn):
    """Answers ``MERGE INTO`` with plain Spark SQL (a rewrite of the target table), ``DESCRIBE HISTORY`` with version 3
    and ``VERSION AS OF`` with the table itself; records every statement."""

    def __init__(self, real):
        super().__init__(real, version=3)

    def answer(self, text):
        match = MERGE.match(text)
        if not match:
            return super().answer(text)
        target, source, on, condition, action, assignments = match.groups()
        key = re.search(r"s\.`([^`]+)`", on).group(1)
        if action == "DELETE":
            rows = self.real.sql(f"SELECT t.* FROM {target} AS t LEFT ANTI JOIN {source} AS s ON {on}")
            changed = self.real.table(target).count() - rows.count()
            self._replace(target, rows)
            return self.real.sql(f"SELECT {changed}L AS num_deleted_rows")
        updates = dict(re.findall(r"t\.`([^`]+)` = (s\.`[^`]+`)", assignments))
        hit = f"(s.`{key}` IS NOT NULL AND ({condition or 'TRUE'}))"
        columns = [f"CASE WHEN {hit} THEN {updates[c]} ELSE t.`{c}` END AS `{c}`" if c in updates else f"t.`{c}`"
                   for c in self.real.table(target).columns]
        rows = self.real.sql(f"SELECT {', '.join(columns)}, {hit} AS _hit FROM {target} AS t "
                             f"LEFT JOIN {source} AS s ON {on}")
        changed = rows.where("_hit").count()
        self._replace(target, rows.drop("_hit"))
        return self.real.sql(f"SELECT {changed}L AS num_updated_rows, {changed}L AS num_affected_rows")

    def _replace(self, target, rows):
        rows.write.mode("overwrite").saveAsTable(f"{target}_merged")
        self.real.table(f"{target}_merged").write.mode("overwrite").saveAsTable(target)
        self.real.sql(f"DROP TABLE {target}_merged")
        self.real.catalog.refreshTable(target)


@pytest.fixture
def driver_rows(monkeypatch):
    """Rows each ``collect``/``toPandas`` brought to the driver, and each ``createDataFrame`` from the driver."""
    from pyspark.sql.connect.dataframe import DataFrame
    from pyspark.sql.connect.session import SparkSession

    seen = []
    real_collect, real_to_pandas, real_create = DataFrame.collect, DataFrame.toPandas, SparkSession.createDataFrame

    def collect(self):
        rows = real_collect(self)
        seen.append(("collect", len(rows)))
        return rows

    def to_pandas(self):
        frame = real_to_pandas(self)
        seen.append(("toPandas", len(frame)))
        return frame

    def create(self, data, *args, **kwargs):
        seen.append(("createDataFrame", len(data)))
        return real_create(self, data, *args, **kwargs)

    monkeypatch.setattr(DataFrame, "collect", collect)
    monkeypatch.setattr(DataFrame, "toPandas", to_pandas)
    monkeypatch.setattr(SparkSession, "createDataFrame", create)
    return seen


@pytest.fixture
def spark_world(spark, home):
    from workloads.settings import load_settings

    settings = load_settings(home=home, catalog="spark_catalog", schema="sch_labels")
    spark.sql("CREATE DATABASE IF NOT EXISTS sch_labels")
    processed, pending = settings.table(SPEC.processed_table), settings.table(pending_labels_table(SPEC))
    for name in (processed, pending):
        spark.sql(f"DROP TABLE IF EXISTS {name}")
    session = MergeOnLocalSpark(spark)
    tables = SparkTables(session)
    tables.write(processed, pd.concat([processed_rows(day, requests=20) for day in range(3)], ignore_index=True))
    return settings, tables, session, processed, pending


def test_databricks_labels_merge_from_a_spark_source_and_only_counts_reach_the_driver(spark_world, driver_rows):
    settings, tables, session, processed, pending = spark_world
    sent = DAY0 + timedelta(days=2)
    record_labels(settings, SPEC, labels({"d2-r0:0": 4, "d2-r1:1": 6, "d2-r9:0": 1}, requested_at=sent),
                  tables=tables)
    record_labels(settings, SPEC, labels({"d2-r0:0": 5, "d9-r0:0": 2}, requested_at=sent), tables=tables)  # later
    driver_rows.clear()

    result = ingest_labels(settings, SPEC, tables=tables)

    assert (result.received, result.matched, result.updated, result.unmatched) == (4, 3, 3, 1)
    assert not [what for what, _ in driver_rows if what in ("toPandas", "createDataFrame")], driver_rows
    assert driver_rows and max(n for _, n in driver_rows) <= 1, driver_rows  # aggregate and metrics rows only
    assert f"SELECT * FROM {pending} VERSION AS OF 3" in session.sql_seen  # one version of the pending labels
    bound = (pd.Timestamp(sent) - REQUEST_TIME_SLACK).strftime("%Y-%m-%d %H:%M:%S.%f")
    merges = [s for s in session.sql_seen if s.startswith("MERGE INTO")]
    assert merges == [
        (f"MERGE INTO {processed} AS t USING _mlops_update_{SPEC.processed_table} AS s "
        f"ON t.`example_id` = s.`example_id` AND t.`timestamp` >= TIMESTAMP '{bound}+00:00' "
        "WHEN MATCHED AND (t.`quantity` IS NULL OR t.`quantity` <> s.`quantity`) "
        "THEN UPDATE SET t.`quantity` = s.`quantity`"),
        (f"MERGE INTO {pending} AS t USING (SELECT DISTINCT `example_id` FROM _mlops_delete_"
        f"{pending_labels_table(SPEC)}) AS s ON t.`example_id` = s.`example_id` WHEN MATCHED THEN DELETE"),
    ]
    # the MERGE's source is a plan over the pending table, not rows shipped from the driver
    plan = analyzed_plan(tables.spark.table(f"_mlops_update_{SPEC.processed_table}"))
    assert pending_labels_table(SPEC) in plan and "LocalRelation" not in plan, plan
    labelled = tables.spark.table(processed).where("quantity IS NOT NULL").toPandas().set_index("example_id")
    assert labelled["quantity"].to_dict() == {"d2-r0:0": 5, "d2-r1:1": 6, "d2-r9:0": 1}  # the later label won
    assert sorted(tables.spark.table(pending).toPandas()["example_id"]) == ["d9-r0:0"]  # it waits for its unpack

    session.sql_seen.clear()
    again = ingest_labels(settings, SPEC, tables=tables)
    assert (again.received, again.matched, again.updated, again.unmatched) == (1, 0, 0, 1)
    assert not [s for s in session.sql_seen if s.startswith("MERGE INTO")]  # nothing changed: no MERGE at all


def test_databricks_request_id_labels_from_a_table_stay_in_spark(spark_world, driver_rows):
    settings, tables, session, processed, _ = spark_world
    source = settings.table("late_truth")
    tables.spark.sql(f"DROP TABLE IF EXISTS {source}")
    tables.write(source, pd.DataFrame({"request_id": ["d0-r3", "d1-r5", "nope"], "label": [7, 8, 9]}))
    driver_rows.clear()

    result = ingest_labels(settings, SPEC, source=source, tables=tables)

    assert (result.received, result.matched, result.updated, result.unmatched) == (3, 4, 4, 1)
    assert not [what for what, _ in driver_rows if what in ("toPandas", "createDataFrame")], driver_rows
    update = next(s for s in session.sql_seen if s.startswith(f"MERGE INTO {processed}"))
    assert " ON t.`request_id` = s.`request_id` WHEN MATCHED AND " in update  # no request times: no bound
    by_request = tables.spark.table(processed).where("quantity IS NOT NULL").toPandas().groupby("request_id")
    assert by_request["quantity"].agg(list).to_dict() == {"d0-r3": [7, 7], "d1-r5": [8, 8]}
    session.sql_seen.clear()
    assert ingest_labels(settings, SPEC, source=source, tables=tables).updated == 0
    assert not [s for s in session.sql_seen if s.startswith("MERGE INTO")]
