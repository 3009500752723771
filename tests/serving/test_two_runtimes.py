"""Two runtimes, one result: the Spark tables port on a real Delta engine (pysail's Spark Connect server) and the local
backend (delta-rs) run the same unpack, labels MERGE, time travel and bounded reads on the same input, and the tables
they leave are compared row for row."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tests.engines import sail_tables
from workloads.ports.tables import LocalTables, RowFilter
from workloads.serving.champion import version_of_entity as version_of
from workloads.serving.payload_log import payload_frame
from workloads.traffic import request_body
from workloads.unpacking import unpack

START = datetime(2030, 7, 1, tzinfo=UTC)


def _payload(spec, holdout, ids, rows=3):
    records = []
    for i in ids:
        frame = holdout[spec.feature_names].iloc[i % 40:i % 40 + rows]
        fmt = ("dataframe_split", "dataframe_records", "instances", "inputs")[i % 4]
        cid = f"req-{i % 45}" if i >= 50 else f"req-{i}"  # requests 50.. retry ids of the first batch
        records.append({"databricks_request_id": f"db-{i}", "client_request_id": cid,
                        "request_time": (START + timedelta(minutes=i)).isoformat(),
                        "status_code": 400 if i % 17 == 5 else 200, "execution_duration_ms": 2,
                        "request": json.dumps(request_body(frame, fmt, cid)),
                        "response": json.dumps({"predictions": [float(i)] * rows}),
                        "served_entity_id": f"{spec.name}_model-{1 + i // 30}", "logging_error_codes": []})
    return payload_frame(records)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values("example_id").reset_index(drop=True)
    return frame[sorted(frame.columns)]


@pytest.fixture
def runtimes(sail, home, spec):
    from workloads.settings import load_settings

    local = load_settings(home=home)
    spark = load_settings(home=home, catalog="mlops_dev", schema="two_runtimes")
    sail.sql("CREATE SCHEMA IF NOT EXISTS mlops_dev.two_runtimes")
    tables = sail_tables(sail)
    for name in (spec.payload_table, spec.processed_table, f"{spec.name}_unpack_state"):
        sail.sql(f"DROP TABLE IF EXISTS {spark.table(name)}")
    return (local, LocalTables(local.warehouse)), (spark, tables)


def test_unpack_labels_time_travel_and_bounded_reads_agree_row_for_row(runtimes, spec, holdout):
    results = {}
    for label, (settings, tables) in zip(("local", "pysail"), runtimes, strict=True):
        payload_name, processed = settings.table(spec.payload_table), settings.table(spec.processed_table)
        tables.write(payload_name, _payload(spec, holdout, range(40)))
        first = unpack(settings, spec, tables=tables, version_of=version_of)
        after_first = tables.version(processed)
        tables.write(payload_name, _payload(spec, holdout, range(40, 60)))
        tables.write(payload_name, _payload(spec, holdout, range(60, 70)))
        second = unpack(settings, spec, tables=tables, version_of=version_of)
        again = unpack(settings, spec, tables=tables, version_of=version_of)
        labels = pd.DataFrame({"example_id": [f"req-{i}:0" for i in range(0, 40, 3)] + ["nowhere:0"],
                               "quantity": [float(i % 7) for i in range(0, 40, 3)] + [1.0]})
        updated = tables.update_matched(processed, labels, keys=["example_id"], columns=["quantity"])
        unchanged = tables.update_matched(processed, labels, keys=["example_id"], columns=["quantity"])
        deleted = (tables.delete_keys(processed, pd.DataFrame({"example_id": ["req-1:0", "req-1:1", "none"]}),
                                      "example_id"),
                   tables.delete(processed, "quantity = 6.0"))
        extra = tables.read(processed, where=RowFilter(not_null=("quantity",))).sort_values("example_id").head(2)
        inserted = tables.insert_new(processed, extra.assign(example_id=extra["example_id"] + "-copy"),
                                     keys=["example_id"])
        scratch = settings.table("two_runtimes_scratch") if label == "local" else "mlops_dev.two_runtimes.scratch"
        tables.write(scratch, pd.DataFrame({"a": [1, 2]}))
        tables.write(scratch, pd.DataFrame({"a": ["x"], "b": [None]}).astype({"b": "float64"}), mode="overwrite")
        results[label] = {
            "runs": [(r.payload_rows, r.examples_written, r.skipped) for r in (first, second, again)],
            "updated": (updated, unchanged),
            "deleted_inserted": (*deleted, inserted),
            "scratch": tables.read(scratch),
            "table": _sorted(tables.read(processed)),
            "first_version": _sorted(tables.read(processed, version=after_first)),
            "bounded": _sorted(tables.read(processed, columns=["example_id", "timestamp", "quantity"],
                                           where=RowFilter("timestamp", ((START + timedelta(minutes=20),
                                                                          START + timedelta(minutes=45)),),
                                                           not_null=("quantity",)))),
        }
    local, sail = results["local"], results["pysail"]
    assert local["runs"] == sail["runs"]
    assert local["runs"][0][:2] == (40, 3 * (40 - 3)) and local["runs"][2][:2] == (0, 0)
    assert local["updated"] == sail["updated"] == (13, 0)  # 14 labels, one for a request answered 400
    assert local["deleted_inserted"] == sail["deleted_inserted"] and min(local["deleted_inserted"]) > 0
    pd.testing.assert_frame_equal(local["scratch"], sail["scratch"], check_dtype=False)
    for what in ("table", "first_version", "bounded"):
        assert len(local[what]) > 0, what
        pd.testing.assert_frame_equal(local[what], sail[what], check_dtype=False, obj=what)


def test_the_port_refuses_merge_results_in_a_shape_only_other_engines_return(sail, home, spec):
    """pysail answers a MERGE with one ``count`` row, not Databricks' counts: the unmodified port fails loudly rather
    than reporting 0 labels updated."""
    from workloads.errors import MlopsError
    from workloads.ports.tables import SparkTables

    sail.sql("CREATE SCHEMA IF NOT EXISTS mlops_dev.shapes")
    sail.sql("DROP TABLE IF EXISTS mlops_dev.shapes.t")
    tables = SparkTables(sail)
    tables.write("mlops_dev.shapes.t", pd.DataFrame({"example_id": ["a", "b"], "quantity": [None, 2.0]}))
    with pytest.raises(MlopsError, match=r"returned \['count'\], not the Databricks metrics"):
        tables.update_matched("mlops_dev.shapes.t", pd.DataFrame({"example_id": ["a"], "quantity": [1.0]}),
                              keys=["example_id"], columns=["quantity"])
    assert sail.table("mlops_dev.shapes.t").where("quantity = 1.0").count() == 1  # the MERGE itself ran
