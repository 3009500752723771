"""The Databricks unpack path keeps traffic in Spark: only bounded rows ever reach the driver.

Local pyspark has no Delta, so a thin session wrapper answers the Delta statements the port issues (``DESCRIBE
HISTORY``, ``SHOW TBLPROPERTIES``, ``VERSION AS OF``, ``MERGE INTO``) with plain Spark SQL on real tables; everything
else (the read, ``mapInPandas``, the dedupe window, the aggregates) runs in the real local Spark. Every
``DataFrame.collect`` and ``toPandas`` is recorded with the number of rows it brought to the driver.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

from tests.fakes import LocalSparkStandIn
from workloads.ports.tables import SparkTables
from workloads.serving.payload_log import PAYLOAD_SCHEMA, payload_frame
from workloads.traffic import request_body
from workloads.unpacking import KEYS, unpack

DRIVER_ROW_BOUND = 5  # statistics rows (4), the earliest request time, MERGE metrics, the watermark row


class DeltaOnLocalSpark(LocalSparkStandIn):
    """Answers the Delta-only statements with plain Spark SQL; ``VERSION AS OF n`` reads the snapshot table ``<t>_v<n>``
    where one was kept, else the table itself (the newest version)."""

    def answer(self, text):
        if text.startswith("SHOW TBLPROPERTIES"):
            return self.real.createDataFrame([("delta.minReaderVersion", "1")], "key string, value string")
        if text.startswith("MERGE INTO"):
            return self._merge(text)

        def snapshot(match):
            table, version = match.group(1), int(match.group(2))
            kept = f"{table}_v{version}"
            return kept if self.real.catalog.tableExists(kept) else table

        return self.real.sql(re.sub(r"(\S+) VERSION AS OF (\d+)", snapshot, text))

    def _merge(self, text):
        target, source = re.match(r"MERGE INTO (\S+) AS t USING (\S+) AS s ON", text).groups()
        before = self.real.table(target).count()
        if "WHEN MATCHED THEN UPDATE" in text:  # the watermark upsert: one row per source table
            new = self.real.table(source)
            kept = self.real.table(target).join(new.select("source_table"), "source_table", "left_anti")
            kept.unionByName(new).write.mode("overwrite").saveAsTable(target + "_tmp")
            self.real.table(target + "_tmp").write.mode("overwrite").saveAsTable(target)
            self.real.sql(f"DROP TABLE {target}_tmp")
            return self.real.createDataFrame([(0, 1)], "num_inserted_rows long, num_updated_rows long")
        on = text.split(" ON ", 1)[1].split(" WHEN ", 1)[0]
        self.real.sql(f"INSERT INTO {target} SELECT s.* FROM {source} AS s LEFT ANTI JOIN {target} AS t ON {on}")
        inserted = self.real.table(target).count() - before
        return self.real.createDataFrame([(inserted, 0)], "num_inserted_rows long, num_updated_rows long")


def _spark_payload_schema() -> str:
    types = {"string": "string", "date32[day]": "date", "timestamp[us, tz=UTC]": "timestamp", "int32": "int",
             "double": "double", "int64": "bigint", "list<item: string>": "array<string>"}
    return ", ".join(f"`{f.name}` {types[str(f.type)]}" for f in PAYLOAD_SCHEMA)


def _payload_rows(spec, holdout, ids, rows=3):
    start = datetime(2030, 7, 1, tzinfo=UTC)
    records = []
    for i in ids:
        frame = holdout[spec.feature_names].iloc[i % 40:i % 40 + rows]
        fmt = ("dataframe_split", "dataframe_records", "instances", "inputs")[i % 4]
        records.append({"databricks_request_id": str(uuid.UUID(int=i)), "client_request_id": f"req-{i}",
                        "request_time": (start + timedelta(seconds=i)).isoformat(),
                        "status_code": 400 if i % 50 == 7 else 200, "execution_duration_ms": 2,
                        "request": json.dumps(request_body(frame, fmt, f"req-{i}")),
                        "response": json.dumps({"predictions": [float(i)] * rows}),
                        "served_entity_id": f"{spec.name}_model-2", "logging_error_codes": []})
    return payload_frame(records).astype({"logging_error_codes": object})


def test_databricks_unpack_never_brings_traffic_to_the_driver(spark, home, spec, holdout, driver_rows):
    from workloads.settings import load_settings

    settings = load_settings(home=home, catalog="spark_catalog", schema="sch")
    payload_name, processed_name = settings.table(spec.payload_table), settings.table(spec.processed_table)
    for name in (payload_name, f"{payload_name}_v0", processed_name, settings.table(f"{spec.name}_unpack_state")):
        spark.sql(f"DROP TABLE IF EXISTS {name}")
    schema = _spark_payload_schema()
    first, later = _payload_rows(spec, holdout, range(200)), _payload_rows(spec, holdout, range(200, 300))
    spark.createDataFrame(first, schema).write.saveAsTable(f"{payload_name}_v0")
    spark.createDataFrame(first, schema).union(spark.createDataFrame(later, schema)).repartition(3) \
        .write.saveAsTable(payload_name)

    session = DeltaOnLocalSpark(spark, version=0)
    tables = SparkTables(session)
    driver_rows.on = True
    run1 = unpack(settings, spec, tables=tables, version_of=lambda entity: entity.rsplit("-", 1)[-1])
    session.version = 1
    run2 = unpack(settings, spec, tables=tables, version_of=lambda entity: entity.rsplit("-", 1)[-1])
    run3 = unpack(settings, spec, tables=tables)
    driver_rows.on = False

    assert (run1.payload_rows, run1.skipped["status"], run1.examples_written) == (200, 4, 196 * 3)
    assert (run2.from_version, run2.to_version, run2.payload_rows, run2.examples_written) == (0, 1, 100, 98 * 3)
    assert (run3.payload_rows, run3.examples_written) == (0, 0)
    assert driver_rows and max(n for _, n in driver_rows) <= DRIVER_ROW_BOUND, driver_rows
    assert [what for what, _ in driver_rows].count("toPandas") == 2  # the watermark row, in runs 2 and 3
    # the new rows were found in Spark (version anti join) and appended (no MERGE against the processed rows)
    assert f"SELECT `databricks_request_id` FROM {payload_name} VERSION AS OF 0" in session.sql_seen
    assert not [s for s in session.sql_seen if s.startswith(f"MERGE INTO {processed_name}")]

    processed = spark.table(processed_name).toPandas()
    assert len(processed) == 294 * 3 and not processed.duplicated(KEYS).any()
    assert set(processed["model_version"]) == {"2"}
    assert sorted(set(processed["request_id"])) == sorted(f"req-{i}" for i in range(300) if i % 50 != 7)
