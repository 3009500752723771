"""Reading only the rows a table gained between versions (``read_changes``) and insert-only merges (``insert_new``)."""

from __future__ import annotations

import pandas as pd

from tests.engines import analyzed_plan
from tests.fakes import LocalSparkStandIn
from workloads.ports.tables import LocalTables, SparkTables

NAME = "cat.sch.events"


def _frame(ids, label="a", day="2030-01-01"):
    return pd.DataFrame({"id": [f"r{i}" for i in ids], "label": [f"{label}{i}" for i in ids],
                         "ts": pd.to_datetime([day] * len(ids), utc=True)})


def _ids(changes) -> list[str]:
    return sorted(changes.rows["id"])


def test_local_changes_are_exactly_the_rows_each_commit_added(tmp_path):
    tables = LocalTables(tmp_path)
    tables.write(NAME, _frame([1, 2, 3]))
    everything = tables.read_changes(NAME, key="id")
    assert (_ids(everything), everything.after_version, everything.version) == (["r1", "r2", "r3"], None, 0)

    tables.write(NAME, _frame([4, 5]))                                        # an append
    tables.merge(NAME, _frame([5, 6], label="b"), keys=["id"], update=False)  # insert-only merge: only r6 is new
    changes = tables.read_changes(NAME, key="id", after_version=0)
    assert (_ids(changes), changes.version) == (["r4", "r5", "r6"], 2)
    assert changes.rows.set_index("id").loc["r5", "label"] == "a5"
    # a retry of the same read returns the same rows; the next read starts where it stopped
    assert _ids(tables.read_changes(NAME, key="id", after_version=0)) == ["r4", "r5", "r6"]
    assert _ids(tables.read_changes(NAME, key="id", after_version=changes.version)) == []
    assert _ids(tables.read_changes(NAME, key="id", after_version=1)) == ["r6"]

    # an upsert rewrites the file holding r1..r3: only the row it inserted is new, not the rewritten ones
    tables.merge(NAME, _frame([2, 7], label="c"), keys=["id"], update=True)
    assert _ids(tables.read_changes(NAME, key="id", after_version=2)) == ["r7"]
    # a delete and a compaction add files of old rows only
    tables.delete(NAME, "id = 'r3'")
    tables._table(NAME).optimize.compact()
    latest = tables.read_changes(NAME, key="id", after_version=3)
    assert _ids(latest) == [] and latest.version == tables.version(NAME)
    assert _ids(tables.read_changes(NAME, key="id", after_version=0)) == ["r4", "r5", "r6", "r7"]


def test_local_changes_project_columns_and_read_only_new_files(tmp_path, monkeypatch):
    tables = LocalTables(tmp_path)
    for start in range(0, 50, 10):
        tables.write(NAME, _frame(range(start, start + 10)))
    import workloads.ports.tables as port

    read = []
    real = port._read_files

    def recording(table, paths, columns):
        read.append(len(paths))
        return real(table, paths, columns)

    monkeypatch.setattr(port, "_read_files", recording)
    changes = tables.read_changes(NAME, key="id", after_version=3, columns=["label"])
    assert list(changes.rows.columns) == ["label"] and sorted(changes.rows["label"]) == [f"a{i}" for i in range(40, 50)]
    assert read == [1]  # one file added since version 3, out of five


def test_local_insert_new_inserts_each_key_once_and_prunes_by_since(tmp_path):
    tables = LocalTables(tmp_path)
    assert tables.insert_new(NAME, _frame([1, 2], day="2030-01-01"), keys=["id"]) == 2
    assert tables.insert_new(NAME, _frame([2, 3], day="2030-01-05"), keys=["id"]) == 1
    # a replay of the same rows with since at their own time: nothing twice
    assert tables.insert_new(NAME, _frame([3], day="2030-01-05"), keys=["id"],
                             since=("ts", pd.Timestamp("2030-01-05", tz="UTC"))) == 0
    assert tables.insert_new(NAME, _frame([3, 4], day="2030-01-05"), keys=["id"],
                             since=("ts", pd.Timestamp("2030-01-04 23:00", tz="UTC"))) == 1
    # since past the old copy of r1: the lookup does not see it, so the caller must only promise what is true
    assert tables.insert_new(NAME, _frame([1], day="2030-01-06"), keys=["id"],
                             since=("ts", pd.Timestamp("2030-01-04", tz="UTC"))) == 1
    assert sorted(tables.read(NAME)["id"]) == ["r1", "r1", "r2", "r3", "r4"]


class PlanSpark(LocalSparkStandIn):
    """A local Spark session standing in for Databricks where Delta SQL is needed (local pyspark has no Delta).

    ``DESCRIBE HISTORY`` answers ``version``; ``SHOW TBLPROPERTIES`` answers the properties set here; ``VERSION AS OF``
    reads the current table; ``MERGE`` is recorded and answers a metrics row.
    """

    def __init__(self, real, version=5, properties=None):
        super().__init__(real, version)
        self.properties = properties or {}

    def answer(self, text):
        if text.startswith("SHOW TBLPROPERTIES"):
            return self.real.createDataFrame(list(self.properties.items()) or [("x", "y")], "key string, value string")
        if text.startswith("MERGE"):
            return self.real.createDataFrame([(3, 0)], "num_inserted_rows long, num_updated_rows long")
        return self.real.sql(text.split(" VERSION AS OF ")[0] if " VERSION AS OF " in text else text)


def test_spark_changes_without_the_feed_anti_join_the_older_version_in_spark(spark):
    spark.sql("DROP TABLE IF EXISTS sch.events_nocdf")
    spark.createDataFrame(_frame([1, 2, 3])).write.saveAsTable("sch.events_nocdf")
    fake = PlanSpark(spark, version=7)
    changes = SparkTables(fake).read_changes("spark_catalog.sch.events_nocdf", key="id", after_version=4,
                                             columns=["id", "label"])
    assert changes.version == 7 and changes.after_version == 4
    assert "SELECT `id` FROM spark_catalog.sch.events_nocdf VERSION AS OF 4" in fake.sql_seen
    assert "SELECT * FROM spark_catalog.sch.events_nocdf VERSION AS OF 7" in fake.sql_seen
    plan = analyzed_plan(changes.rows)
    assert "LeftAnti" in plan and changes.rows.columns == ["id", "label"]
    assert not any(s.startswith("MERGE") for s in fake.sql_seen)


def test_spark_changes_with_the_feed_read_only_inserts_of_the_version_range(spark):
    class Reader:
        def __init__(self):
            self.options = {}

        def format(self, fmt):
            self.options["format"] = fmt
            return self

        def option(self, key, value):
            self.options[key] = value
            return self

        def table(self, name):
            self.options["table"] = name
            return spark.createDataFrame([("r1", "a1", "insert", 5, None), ("r0", "a0", "update_postimage", 5, None)],
                                         "id string, label string, _change_type string, _commit_version long, "
                                         "_commit_timestamp timestamp")

    spark.sql("DROP TABLE IF EXISTS sch.events_cdf")
    spark.createDataFrame(_frame([1])).write.saveAsTable("sch.events_cdf")
    fake = PlanSpark(spark, version=6, properties={"delta.enableChangeDataFeed": "true"})
    reader = Reader()
    fake.read = reader
    changes = SparkTables(fake).read_changes("spark_catalog.sch.events_cdf", key="id", after_version=4)
    assert reader.options == {"format": "delta", "readChangeFeed": "true", "startingVersion": 5, "endingVersion": 6,
                              "table": "spark_catalog.sch.events_cdf"}
    assert changes.rows.columns == ["id", "label"] and changes.version == 6
    assert [r["id"] for r in changes.rows.collect()] == ["r1"]


def test_spark_insert_new_merges_a_spark_source_with_the_since_bound(spark):
    spark.sql("DROP TABLE IF EXISTS sch.processed_t")
    spark.createDataFrame(_frame([1])).write.saveAsTable("sch.processed_t")
    fake = PlanSpark(spark)
    source = spark.createDataFrame(_frame([2, 3]))
    inserted = SparkTables(fake).insert_new("spark_catalog.sch.processed_t", source, keys=["id"],
                                            since=("ts", pd.Timestamp("2030-01-01 06:00", tz="Europe/Paris")))
    merge = next(s for s in fake.sql_seen if s.startswith("MERGE"))
    assert inserted == 3
    assert merge == ("MERGE INTO spark_catalog.sch.processed_t AS t USING _mlops_insert_processed_t AS s "
                     "ON t.`id` = s.`id` AND t.`ts` >= TIMESTAMP '2030-01-01 05:00:00.000000+00:00' "
                     "WHEN NOT MATCHED THEN INSERT *")
    assert "WHEN MATCHED" not in merge


def test_local_changes_come_from_the_range_s_commits_and_fall_back_to_the_snapshots(tmp_path, monkeypatch):
    """The added and removed files come from the commits of the range alone (no older version is loaded); when a
    commit of the range has left the log, the two versions' file lists give the same rows."""
    import deltalake

    import workloads.ports.tables as port

    tables = LocalTables(tmp_path)
    for start in range(0, 40, 10):
        tables.write(NAME, _frame(range(start, start + 10)))                   # versions 0..3
    tables.merge(NAME, _frame([5, 41], label="b"), keys=["id"], update=True)  # 4: rewrites r0..r9's file, adds r41
    tables.write(NAME, _frame([50, 51]))                                      # 5
    opened = []

    class Recording(deltalake.DeltaTable):
        def __init__(self, uri, version=None, **kwargs):
            opened.append(version)
            super().__init__(uri, version=version, **kwargs)

    monkeypatch.setattr(deltalake, "DeltaTable", Recording)
    expected = ["r41", "r50", "r51"]
    assert _ids(tables.read_changes(NAME, key="id", after_version=3)) == expected
    assert [v for v in opened if v is not None] == [3]  # only to read the rewritten file's keys
    opened.clear()
    assert _ids(tables.read_changes(NAME, key="id", after_version=4)) == ["r50", "r51"]
    assert [v for v in opened if v is not None] == []  # an append only: no older version at all

    tables._table(NAME).create_checkpoint()  # at 5; then commit 4 leaves the log
    (tmp_path / "cat" / "sch" / "events" / "_delta_log" / f"{4:020d}.json").unlink()
    assert port._commit_changes(tables.path(NAME), 3, 5) is None
    assert _ids(tables.read_changes(NAME, key="id", after_version=3)) == expected
    assert 3 in opened
