"""The unpack transform on Spark (``mapInPandas``) gives the same processed rows as on pandas."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from workloads.serving.payload_log import PAYLOAD_SCHEMA, payload_frame
from workloads.traffic import request_body
from workloads.unpacking import spark_schema, unpack_payload, unpack_spark


def test_spark_and_pandas_unpack_agree(spark, spec, holdout):
    start = datetime(2030, 5, 1, tzinfo=UTC)
    rows = []
    for i, fmt in enumerate(["dataframe_split", "dataframe_records", "instances", "inputs"]):
        frame = holdout[spec.feature_names].iloc[i * 2:(i + 1) * 2]
        rows.append({"databricks_request_id": str(uuid.uuid4()), "client_request_id": f"c{i}" if i % 2 else None,
                     "request_time": (start + timedelta(minutes=i)).isoformat(), "status_code": 200,
                     "execution_duration_ms": 2, "request": json.dumps(request_body(frame, fmt, None)),
                     "response": json.dumps({"predictions": [float(i), float(i) + 0.5]}),
                     "served_entity_id": "bakehouse_autolog_model-7", "logging_error_codes": []})
    rows.append({**rows[0], "databricks_request_id": "bad", "status_code": 400})
    rows.append({**rows[0], "databricks_request_id": "cut", "logging_error_codes": ["MAX_REQUEST_SIZE_EXCEEDED"]})
    payload = payload_frame(rows)

    expected = unpack_payload(payload, spec).frame
    sdf = spark.createDataFrame(payload.astype({"logging_error_codes": object}),
                                schema=_spark_payload_schema()).repartition(2)
    result = unpack_spark(sdf, spec).toPandas()

    assert len(expected) == 8
    assert result.columns.tolist() == expected.columns.tolist()
    assert str(spark.createDataFrame([], spark_schema(spec)).schema["hour"].dataType) == "LongType()"
    result = result.sort_values("example_id").reset_index(drop=True)
    expected = expected.sort_values("example_id").reset_index(drop=True)
    assert result["example_id"].tolist() == expected["example_id"].tolist()
    assert result["prediction"].tolist() == expected["prediction"].tolist()
    assert result["model_version"].tolist() == ["7"] * 8
    assert result["product"].tolist() == expected["product"].tolist()
    assert result["unitPrice"].tolist() == expected["unitPrice"].astype(int).tolist()
    assert (result["timestamp"].dt.tz_localize("UTC") if result["timestamp"].dt.tz is None
            else result["timestamp"]).tolist() == expected["timestamp"].tolist()
    assert result["quantity"].isna().all()


def _spark_payload_schema() -> str:
    types = {"string": "string", "date32[day]": "date", "timestamp[us, tz=UTC]": "timestamp", "int32": "int",
             "double": "double", "int64": "bigint", "list<item: string>": "array<string>"}
    return ", ".join(f"`{f.name}` {types[str(f.type)]}" for f in PAYLOAD_SCHEMA)
