"""The tables port: local Delta tables, and the Spark implementation against local pyspark."""


import pandas as pd
import pytest

from workloads.errors import MlopsError, TableNotFoundError
from workloads.ports.tables import LocalTables, SparkTables, split_name


def _frame(ids, label="a"):
    return pd.DataFrame({"id": ids, "label": [f"{label}{i}" for i in ids],
                         "ts": pd.to_datetime(["2026-11-01"] * len(ids))})


def test_three_level_names_are_checked():
    assert split_name("main.sales.orders") == ("main", "sales", "orders")
    for bad in ("orders", "a.b", "a.b.c.d", "a..c", "a.b.c d", ""):
        with pytest.raises(MlopsError, match="not a three-level Unity Catalog name"):
            split_name(bad)


def test_local_write_read_merge_delete_version(tmp_path):
    tables = LocalTables(tmp_path)
    name = "cat.sch.events"
    assert not tables.exists(name)
    tables.write(name, _frame([1, 2, 3]))
    assert (tmp_path / "cat" / "sch" / "events" / "_delta_log").is_dir()
    assert tables.version(name) == 0
    out = tables.read(name)
    assert sorted(out["id"]) == [1, 2, 3]
    assert str(out["ts"].dt.tz) == "UTC"  # naive timestamps are stored as UTC
    metrics = tables.merge(name, _frame([3, 4], label="b"), keys=["id"])
    assert metrics == {"num_target_rows_inserted": 1, "num_target_rows_updated": 1}
    out = tables.read(name).set_index("id")
    assert out.loc[3, "label"] == "b3" and out.loc[1, "label"] == "a1" and len(out) == 4
    # insert-only merge leaves matched rows alone: re-merging is idempotent.
    assert tables.merge(name, _frame([4, 5], label="c"), keys=["id"], update=False)["num_target_rows_inserted"] == 1
    assert tables.read(name).set_index("id").loc[4, "label"] == "b4"
    assert tables.delete(name, "id >= 4") == 2
    assert sorted(tables.read(name)["id"]) == [1, 2, 3]
    assert tables.read(name, version=0)["label"].tolist() == ["a1", "a2", "a3"]
    assert tables.version(name) == 3  # write, merge, merge, delete
    tables.write(name, _frame([9]), mode="overwrite")
    assert tables.read(name)["id"].tolist() == [9]
    tables.drop(name)
    assert not tables.exists(name)


def test_local_missing_table_and_bad_mode_are_clear(tmp_path):
    tables = LocalTables(tmp_path)
    with pytest.raises(TableNotFoundError, match="table cat.sch.nope does not exist"):
        tables.read("cat.sch.nope")
    with pytest.raises(MlopsError, match="write mode must be"):
        tables.write("cat.sch.t", _frame([1]), mode="upsert")


class RecordingSpark:
    """Stands in for a Databricks Spark session where Delta SQL is needed (local pyspark has no Delta)."""

    def __init__(self, real):
        self.real, self.sql_seen = real, []

    def __getattr__(self, item):
        return getattr(self.real, item)

    def sql(self, text):
        self.sql_seen.append(" ".join(text.split()))
        if text.startswith(("MERGE", "DELETE", "DESCRIBE HISTORY")):
            return self.real.createDataFrame(
                [(1, 2, 0, 7)], "num_inserted_rows long, num_updated_rows long, num_affected_rows long, version long")
        return self.real.sql(text)




def test_an_open_local_table_sees_every_later_commit_and_a_table_made_again(tmp_path):
    """The local port keeps tables open between calls (a load replays the log, an update reads only new commits):
    what another writer commits is read, and a table dropped and created again at the same path is the new one."""
    reader, writer = LocalTables(tmp_path), LocalTables(tmp_path)
    name = "cat.sch.events"
    writer.write(name, _frame([1, 2]))
    assert sorted(reader.read(name)["id"]) == [1, 2]
    writer.write(name, _frame([3]), mode="append")
    assert sorted(reader.read(name)["id"]) == [1, 2, 3] and reader.version(name) == 1
    assert sorted(reader.read(name, version=0)["id"]) == [1, 2]  # time travel leaves the open table current
    assert sorted(reader.read(name)["id"]) == [1, 2, 3]
    writer.drop(name)
    writer.write(name, _frame([7], label="new"))
    again = reader.read(name)
    assert list(again["id"]) == [7] and list(again["label"]) == ["new7"] and reader.version(name) == 0
    reader.drop(name)
    with pytest.raises(TableNotFoundError):
        reader.read(name)


def test_spark_port_reads_and_writes_real_tables(spark):
    # Local Spark's session catalog is two-level; Unity Catalog names resolve as spark_catalog.<schema>.<table>.
    tables = SparkTables(spark)
    name = "spark_catalog.sch.events"
    assert not tables.exists(name)
    tables.write(name, _frame([1, 2]))
    tables.write(name, _frame([3]))
    out = tables.read(name)
    assert sorted(out["id"]) == [1, 2, 3]
    assert tables.read(name, columns=["label"]).columns.tolist() == ["label"]
    tables.write(name, _frame([7]), mode="overwrite")
    assert tables.read(name)["id"].tolist() == [7]
    tables.drop(name)
    assert not tables.exists(name)
    with pytest.raises(TableNotFoundError):
        tables.read(name)


def test_spark_port_issues_delta_sql_for_merge_delete_and_version(spark):
    fake = RecordingSpark(spark)
    tables = SparkTables(fake)
    name = "spark_catalog.sch.labels"
    tables.write(name, _frame([1]))
    result = tables.merge(name, _frame([1, 2]), keys=["id"])
    assert result == {"num_target_rows_inserted": 1, "num_target_rows_updated": 2}
    merge = next(s for s in fake.sql_seen if s.startswith("MERGE"))
    assert merge == (f"MERGE INTO {name} AS t USING _mlops_merge_labels AS s ON t.`id` = s.`id` "
                     "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    tables.merge(name, _frame([3]), keys=["id"], update=False)
    assert "WHEN MATCHED" not in fake.sql_seen[-1]
    tables.delete(name, "id = 1")
    assert fake.sql_seen[-1] == f"DELETE FROM {name} WHERE id = 1"
    assert tables.version(name) == 7
    assert fake.sql_seen[-1] == f"DESCRIBE HISTORY {name} LIMIT 1"
