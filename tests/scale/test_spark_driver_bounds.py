"""On Databricks, batch scoring, the inference-table check and the report's payload statistics keep the data in
Spark: run on local pyspark with 1k and 5k source rows, every ``collect``/``toPandas`` brings the same few rows to
the driver (one aggregate row, one row per window), and the results equal the local (pandas) path's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.scale.conftest import VersionedLocalSpark
from workloads import registry
from workloads.batch import LINEAGE_COLUMNS, _batch_metrics, batch_metrics_sql, score_batch
from workloads.monitoring.checks import check_payload_table, payload_summary_sql
from workloads.monitoring.report import _payload_stats
from workloads.ports.tables import LocalTables, SparkTables
from workloads.serving.payload_log import PAYLOAD_SCHEMA
from workloads.settings import load_settings
from workloads.specs import load_spec

SIZES = (1_000, 5_000)  # the second only has to be larger: the driver rows stay the same
MODELS = ("bakehouse_autolog", "bakehouse_large_order")  # regression and classification


@pytest.fixture(scope="module")
def scoring_home(tmp_path_factory):
    """A home whose catalog is local Spark's (``spark_catalog.sch``), bakehouse data, both problem types trained."""
    from workloads.data.bakehouse import generate
    from workloads.data.features import write_bakehouse
    from workloads.training import train_model

    settings = load_settings(home=tmp_path_factory.mktemp("scale-home"), catalog="spark_catalog", schema="sch")
    write_bakehouse(settings, generate(seed=42, reference_date="2026-11-01"))
    for name in MODELS:
        train_model(settings, load_spec(name))
    return settings


def _labelled_rows(settings, spec, n):
    from workloads.data import roles
    from workloads.data.source import read_examples

    holdout = roles.split(read_examples(settings, spec), spec).holdout
    return holdout[[*spec.feature_names, spec.label.name]].sample(n, replace=True, random_state=n).reset_index(drop=True)


@pytest.mark.parametrize("model", MODELS)
def test_databricks_batch_scores_in_spark_and_brings_one_row_to_the_driver(spark, scoring_home, driver_rows, model):
    settings, spec = scoring_home, load_spec(model)
    predictions = settings.table(spec.predictions_table)
    spark.sql(f"DROP TABLE IF EXISTS {predictions}")
    driver_rows_per_size = {}
    for n in SIZES:
        source = settings.table(f"batch_source_{model}_{n}")
        spark.createDataFrame(_labelled_rows(settings, spec, n)).write.mode("overwrite").saveAsTable(source)
        session = VersionedLocalSpark(spark, version=3)
        driver_rows.clear()
        driver_rows.on = True
        result = score_batch(settings, spec, source_table=source, tables=SparkTables(session))
        driver_rows.on = False
        driver_rows_per_size[n] = list(driver_rows)

        assert (result.table, result.rows) == (predictions, n)
        assert f"SELECT * FROM {source} VERSION AS OF 3" in session.sql_seen  # scored at the version it logs
        batch = spark.table(predictions).where(f"score_batch_id = '{result.score_batch_id}'").toPandas()
        assert len(batch) == n and set(LINEAGE_COLUMNS) <= set(batch.columns)
        champion = registry.require_alias(settings, spec, registry.CHAMPION)
        assert set(batch["model_version"]) == {str(champion.version)} and set(batch["run_id"]) == {champion.run_id}
        assert batch["scored_at"].nunique() == 1 and batch[spec.prediction.name].notna().all()
        # the metrics are the pandas definitions' on the rows written
        expected = _batch_metrics(spec, batch[spec.label.name], batch[spec.prediction.name])
        assert result.metrics == pytest.approx(expected, rel=1e-9, abs=1e-12)
        run = MlflowClient(settings.tracking_uri).get_run(result.run_id)
        assert run.data.metrics == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert run.data.params["rows"] == str(n)
        (dataset,) = [i.dataset for i in run.inputs.dataset_inputs]
        assert dataset.source_type == "delta_table"
        assert json.loads(dataset.source) == {"delta_table_name": source, "delta_table_version": 3}

    unlabelled = settings.table(f"batch_source_{model}_unlabelled")
    spark.createDataFrame(_labelled_rows(settings, spec, 50).drop(columns=[spec.label.name])) \
        .write.mode("overwrite").saveAsTable(unlabelled)
    result = score_batch(settings, spec, source_table=unlabelled, tables=SparkTables(VersionedLocalSpark(spark)))
    assert (result.rows, result.metrics) == (50, {})
    assert MlflowClient(settings.tracking_uri).get_run(result.run_id).data.metrics == {}

    first = registry.load_model(settings, spec)
    sample = spark.table(predictions).limit(200).toPandas()
    # spark_udf scored as the champion scores in pandas
    np.testing.assert_allclose(np.asarray(first.predict(sample[spec.feature_names]), dtype=float),
                               sample[spec.prediction.name].astype(float), rtol=1e-9)
    # the same few rows reach the driver at 1k and 20k source rows: the version row and the metrics row
    assert driver_rows_per_size[SIZES[0]] == driver_rows_per_size[SIZES[1]] == [("collect", 1), ("collect", 1)]


def test_batch_metrics_sql_names_both_problem_types_columns():
    regression, classification = load_spec("bakehouse_autolog"), load_spec("bakehouse_large_order")
    assert "var_pop(CAST(`quantity` AS DOUBLE))" in batch_metrics_sql(regression, "v", labelled=True)
    sql = batch_metrics_sql(classification, "v", labelled=True)
    assert "GROUP BY `large_order`, `prediction`" in sql and "AS batch_f1" in sql
    assert batch_metrics_sql(classification, "v", labelled=False) == \
        "SELECT count(*) AS scored_rows, 0L AS labelled_rows FROM v"


def _spark_type(arrow_type) -> str:
    return {"string": "string", "date32[day]": "date", "timestamp[us, tz=UTC]": "timestamp", "int32": "int",
            "double": "double", "int64": "bigint", "list<item: string>": "array<string>"}[str(arrow_type)]


def _payload(n: int) -> pd.DataFrame:
    """``n`` requests over three days (2030-07-01..03): every 9th failed (some 500, some 400), varied latencies."""
    rng = np.random.default_rng(n)
    start = pd.Timestamp("2030-07-01", tz="UTC")
    times = start + pd.to_timedelta(np.sort(rng.integers(0, 3 * 86_400_000_000, n)), unit="us")
    codes = np.where(np.arange(n) % 9 == 4, np.where(np.arange(n) % 2 == 0, 500, 400), 200)
    return pd.DataFrame({
        "databricks_request_id": [f"r{i}" for i in range(n)], "client_request_id": [f"c{i}" for i in range(n)],
        "request_date": times.date, "request_time": times, "status_code": codes.astype("int32"),
        "sampling_fraction": 1.0, "execution_duration_ms": rng.integers(1, 400, n),
        "request": "{}", "response": "{}", "served_entity_id": "e-1", "logging_error_codes": [[] for _ in range(n)],
        "requester": "me"})


def test_databricks_payload_check_and_report_statistics_aggregate_in_spark(spark, tmp_path, driver_rows):
    spec = load_spec("bakehouse_autolog")
    settings = load_settings(home=tmp_path, catalog="spark_catalog", schema="sch")
    name = settings.table(spec.payload_table)
    schema = ", ".join(f"`{f.name}` {_spark_type(f.type)}" for f in PAYLOAD_SCHEMA)
    # day windows, one before the traffic (no requests: stays empty) and three with it
    starts = pd.date_range("2030-06-30", periods=4, freq="D", tz="UTC")
    spans = pd.DataFrame({"window_start": starts, "window_end": starts + pd.Timedelta(days=1)})
    now = pd.Timestamp("2030-07-04 06:00", tz="UTC")
    driver_rows_per_size = {}
    for n in SIZES:
        payload = _payload(n)
        spark.sql(f"DROP TABLE IF EXISTS {name}")
        spark.createDataFrame(payload, schema).repartition(4).write.saveAsTable(name)
        local = LocalTables(tmp_path / f"warehouse-{n}")
        local.write(name, payload)

        driver_rows.clear()
        driver_rows.on = True
        in_spark = check_payload_table(settings, spec, tables=SparkTables(spark), now=now)
        stats_in_spark = _payload_stats(settings, spec, spans, SparkTables(spark))
        driver_rows.on = False
        driver_rows_per_size[n] = list(driver_rows)

        assert in_spark == check_payload_table(settings, spec, tables=local, now=now)
        assert [c.detail for c in in_spark.checks] == [
            f"{n} row(s)", "AI Gateway columns", f"{n} row(s)",
            f"newest request {payload['request_time'].max():%Y-%m-%d %H:%M} UTC (6.0 h ago)",
            f"{(payload['status_code'] != 200).mean():.1%} non-2xx (bound 5%)"]
        expected = _payload_stats(settings, spec, spans, local)
        pd.testing.assert_frame_equal(stats_in_spark, expected, rtol=1e-12)
        assert expected["requests"].iloc[1:].sum() == n and np.isnan(expected["requests"].iloc[0])
    # one summary row for the check, one row per window with requests for the report, whatever the traffic
    assert driver_rows_per_size[SIZES[0]] == driver_rows_per_size[SIZES[1]] == [("collect", 1), ("collect", 3)]


def test_payload_summary_sql_reads_codes_leniently_and_times_as_epoch():
    sql = payload_summary_sql("c.s.t", ("request_time", "status_code"))
    assert sql.startswith("SELECT count(*) AS row_count, unix_micros(max(`request_time`)) AS newest_us")
    assert "try_cast(`status_code` AS DOUBLE)" in sql and sql.endswith("FROM c.s.t")
    assert "CAST(NULL AS BIGINT) AS newest_us" in payload_summary_sql("c.s.t", ("status_code",))


def _metric_tables_in_spark(spark, settings, spec, tmp_path):
    """Copy the locally refreshed metric tables into local Spark tables of the same names (their parquet rows)."""
    import pyarrow.parquet as pq

    local = LocalTables(settings.warehouse)
    for table in (spec.profile_metrics_table, spec.drift_metrics_table):
        name = settings.metrics_table(table)
        path = tmp_path / f"{table}.parquet"
        pq.write_table(local._table(name).to_pyarrow_table(), path)
        spark.sql(f"DROP TABLE IF EXISTS {name}")
        spark.read.parquet(str(path)).write.saveAsTable(name)


def test_databricks_metric_readers_bring_only_the_windows_they_read(spark, tmp_path_factory, driver_rows):
    """The watcher's latest window is one window's rows and the drift summary its last days' rows, at 4 and at 12
    days of history; both equal what the local path reads."""
    from tests.monitoring.conftest import seed_tables
    from workloads.monitoring.checks import drift_summary
    from workloads.monitoring.metrics import granularity_sql, latest_window_metrics, read_metric_tables
    from workloads.monitoring.refresh import refresh_local

    spec = load_spec("bakehouse_autolog").model_copy(update={"slices": []})
    driver_rows_per_history = {}
    for days in (4, 12):
        home = tmp_path_factory.mktemp(f"metrics-{days}")
        settings = load_settings(home=home, catalog="spark_catalog", schema="sch")
        seed_tables(settings, spec, rows=150 * days, days=days, baseline_rows=300, drift_from_day=2)
        refresh_local(settings, spec)
        _metric_tables_in_spark(spark, settings, spec, home)
        in_spark = SparkTables(spark)

        driver_rows.clear()
        driver_rows.on = True
        latest = latest_window_metrics(settings, spec, tables=in_spark)
        summary = drift_summary(settings, spec, days=2, tables=in_spark)
        driver_rows.on = False
        driver_rows_per_history[days] = list(driver_rows)

        assert latest == latest_window_metrics(settings, spec)
        assert latest.window_end - latest.window_start == pd.Timedelta(days=1)
        assert summary == drift_summary(settings, spec, days=2) and summary.windows == 2
        # the report's read: only its granularity's rows, the same rows as the local read keeps
        profile, drift = read_metric_tables(settings, spec, in_spark, spark_where=granularity_sql("1 day"))
        local_profile, _ = read_metric_tables(settings, spec)
        assert set(profile["granularity"]) == set(drift["granularity"]) == {"1 day"}
        assert len(profile) == (local_profile["granularity"] == "1 day").sum()

    # latest window: the latest-start row, one window's profile and drift rows; drift summary: the latest-start
    # row and two windows' drift rows. The same at 4 and 12 days of history.
    shapes = driver_rows_per_history[4]
    assert shapes == driver_rows_per_history[12]
    assert [what for what, _ in shapes] == ["collect", "toPandas", "toPandas", "collect", "toPandas"], shapes
    one_window = shapes[1][1] + shapes[2][1]
    assert shapes[0][1] == shapes[3][1] == 1 and shapes[4][1] == 2 * shapes[2][1] and one_window < 200
