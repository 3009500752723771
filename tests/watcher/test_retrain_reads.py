"""The retraining reads: only the labelled rows of the period, only the columns training needs, at most
``MLOPS_RETRAIN_MAX_ROWS`` of them (the newest); the evaluation window is the last day that has labels. On
Databricks the same reads run in Spark and only the capped sample reaches the driver."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tests.serving.test_labels_merge import DAY0, SPEC, processed_rows
from workloads.data.roles import is_fresh_holdout
from workloads.errors import SettingsError
from workloads.ports.tables import LocalTables, SparkTables
from workloads.settings import DEFAULT_RETRAIN_MAX_ROWS, load_settings
from workloads.watcher.retraining import fresh_traffic, latest_labelled_window

TRAINING_COLUMNS = [*SPEC.feature_names, "quantity", "example_id"]


def history() -> pd.DataFrame:
    """Four days of 10 requests x 2 examples; odd requests and all of day 3 have no label yet."""
    days = []
    for day in range(4):
        rows = processed_rows(day, requests=10)
        request = rows["request_id"].str.split("-r").str[1].astype(int)
        rows["quantity"] = pd.array([r + day if r % 2 == 0 and day < 3 else None for r in request], dtype="Int64")
        days.append(rows)
    return pd.concat(days, ignore_index=True)


class ReadRecorder(LocalTables):
    def __init__(self, warehouse):
        super().__init__(warehouse)
        self.reads = []

    def read(self, name, columns=None, version=None, where=None):
        self.reads.append((list(columns) if columns else None, where))
        return super().read(name, columns, version, where)


@pytest.fixture
def local(settings):
    tables = ReadRecorder(settings.warehouse)
    frame = history()
    for day in range(4):  # one data file per day, as appends lay out a time series
        tables.write(settings.table(SPEC.processed_table), frame[frame["timestamp"].dt.day == DAY0.day + day])
    return settings, tables, frame


def expected(frame: pd.DataFrame, since=None, cap=None) -> pd.DataFrame:
    rows = frame[frame["quantity"].notna()]
    if since is not None:
        rows = rows[rows["timestamp"] >= since]
    rows = rows.sort_values(["timestamp", "example_id"])
    return rows.tail(cap) if cap else rows


def test_fresh_traffic_reads_the_labelled_rows_since_with_only_the_training_columns(local):
    settings, tables, frame = local
    since = pd.Timestamp(DAY0 + timedelta(days=1))

    fresh = fresh_traffic(settings, SPEC, since=since, tables=tables)

    assert list(fresh.columns) == TRAINING_COLUMNS
    assert fresh["example_id"].tolist() == expected(frame, since)["example_id"].tolist()  # 2 days x 5 x 2
    assert len(fresh) == 20 and fresh["quantity"].dtype == "int64"
    columns, where = tables.reads[-1]
    assert set(columns) == {*TRAINING_COLUMNS, "timestamp"}  # not the prediction, ids or model version
    assert where.not_null == ("quantity",) and where.ranges == ((since, None),)


def test_fresh_traffic_keeps_the_newest_rows_up_to_the_setting(local):
    settings, tables, frame = local
    capped = settings.model_copy(update={"retrain_max_rows": 7})

    fresh = fresh_traffic(capped, SPEC, with_timestamp=True, tables=tables)

    newest = expected(frame, cap=7)
    assert fresh["example_id"].tolist() == newest["example_id"].tolist()
    assert fresh["timestamp"].is_monotonic_increasing and fresh["timestamp"].min() == newest["timestamp"].min()
    # the wide read was narrowed to the newest timestamps found from the timestamp column alone
    (first_columns, _), (wide_columns, wide_where) = tables.reads
    assert first_columns == ["timestamp"] and len(wide_columns) == len(TRAINING_COLUMNS) + 1
    assert wide_where.ranges == ((newest["timestamp"].min(), None),)


def test_the_cap_is_a_documented_setting(home, monkeypatch):
    assert load_settings(home=home).retrain_max_rows == DEFAULT_RETRAIN_MAX_ROWS == 200_000
    monkeypatch.setenv("MLOPS_RETRAIN_MAX_ROWS", "5000")
    assert load_settings(home=home).retrain_max_rows == 5000
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv("MLOPS_RETRAIN_MAX_ROWS", bad)
        with pytest.raises(SettingsError, match="MLOPS_RETRAIN_MAX_ROWS must be a positive whole number"):
            load_settings(home=home)


def test_latest_labelled_window_reads_only_the_last_labelled_day(local):
    settings, tables, frame = local
    last_label = expected(frame)["timestamp"].max()

    window = latest_labelled_window(settings, SPEC, tables=tables)

    day = expected(frame, since=last_label - timedelta(days=1) + timedelta(microseconds=1))
    assert window["example_id"].tolist() == day["example_id"].tolist() and len(window) == 10
    assert list(window.columns) == TRAINING_COLUMNS
    reads = [where for _, where in tables.reads]
    assert all(w.ranges and w.ranges[0][0] > pd.Timestamp(DAY0 + timedelta(days=1)) for w in reads)
    held_out = latest_labelled_window(settings, SPEC, held_out_only=True, tables=tables)
    assert held_out["example_id"].tolist() == window[is_fresh_holdout(window, SPEC)]["example_id"].tolist()


def test_max_value_skips_files_that_cannot_hold_a_larger_value(settings):
    from workloads.ports.tables import RowFilter

    tables = LocalTables(settings.warehouse)
    name = settings.table("events")
    frame = history()
    for day in (2, 0, 3, 1):  # files written out of time order
        tables.write(name, frame[frame["timestamp"].dt.day == DAY0.day + day])
    labelled = RowFilter(not_null=("quantity",))
    assert tables.max_value(name, "timestamp", where=labelled) == expected(frame)["timestamp"].max()
    assert tables.max_value(name, "timestamp") == frame["timestamp"].max()
    assert tables.max_value(name, "timestamp", where=RowFilter("timestamp", ())) is None


def test_databricks_retrain_read_and_cap_run_in_spark(spark, home, monkeypatch):
    from pyspark.sql.connect.dataframe import DataFrame

    settings = load_settings(home=home, catalog="spark_catalog", schema="sch_retrain")
    spark.sql("CREATE DATABASE IF NOT EXISTS sch_retrain")
    name = settings.table(SPEC.processed_table)
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    tables = SparkTables(spark)
    frame = history()
    tables.write(name, frame)
    brought = []
    real_collect, real_to_pandas = DataFrame.collect, DataFrame.toPandas
    monkeypatch.setattr(DataFrame, "collect", lambda self: brought.append(len(rows := real_collect(self))) or rows)
    monkeypatch.setattr(DataFrame, "toPandas",
                        lambda self: brought.append(len(out := real_to_pandas(self))) or out)
    capped = settings.model_copy(update={"retrain_max_rows": 7})

    fresh = fresh_traffic(capped, SPEC, since=pd.Timestamp(DAY0), with_timestamp=True, tables=tables)
    window = latest_labelled_window(settings, SPEC, tables=tables)

    assert fresh["example_id"].tolist() == expected(frame, cap=7)["example_id"].tolist()
    assert str(fresh["timestamp"].dt.tz) == "UTC"
    assert fresh["timestamp"].tolist() == expected(frame, cap=7)["timestamp"].tolist()
    last_label = expected(frame)["timestamp"].max()
    day = expected(frame, since=last_label - timedelta(days=1) + timedelta(microseconds=1))
    assert window["example_id"].tolist() == day["example_id"].tolist()
    # only the capped sample, the newest-label aggregate row and that day's rows reached the driver
    assert sorted(brought) == sorted([7, 1, len(day)]), brought
