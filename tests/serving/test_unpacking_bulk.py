"""The bulk (vectorised, orjson) unpack transform equals the per-row transform it replaced, on every format and bad row.

``reference_unpack`` below is the transform as it was before the bulk path (a per-row loop over ``itertuples`` with
``json.loads``), kept verbatim as the oracle.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from workloads.serving.champion import version_of_entity
from workloads.serving.payload_log import REQUEST_ID as PAYLOAD_REQUEST_ID
from workloads.serving.payload_log import payload_frame
from workloads.serving.payloads import PayloadError, conform_columns, decode_body, parse_response, raw_columns
from workloads.specs import EXAMPLE_ID_COLUMN, MODEL_ID_COLUMN, REQUEST_ID_COLUMN, TIMESTAMP_COLUMN, Column
from workloads.traffic import request_body
from workloads.unpacking import KEYS, SKIP_REASONS, example_id, unpack_payload

_PANDAS_TYPES = {"bigint": "Int64", "int": "Int32", "double": "Float64", "float": "Float32",
                 "boolean": "boolean", "string": "object"}


def _reference_cast(frame, columns):
    out = {}
    for col in columns:
        values = frame[col.name] if col.name in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        if col.type == "timestamp":
            out[col.name] = pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")
        elif col.type == "date":
            out[col.name] = pd.to_datetime(values).dt.date
        elif col.type == "string":
            # pandas' Arrow-backed str, as a Delta table's strings read back
            out[col.name] = values.astype(object).where(values.notna(), None).astype(pd.StringDtype("pyarrow", np.nan))
        else:
            out[col.name] = pd.array(values.astype(object).where(values.notna(), None).tolist(),
                                     dtype=_PANDAS_TYPES[col.type])
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def _missing(value) -> bool:
    return value is None or (not isinstance(value, (list, np.ndarray)) and bool(pd.isna(value)))


def reference_unpack(payload, spec, version_of=version_of_entity):
    """The per-row transform before the bulk path: (processed frame, skipped counts)."""
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    features = {name: [] for name in spec.feature_names}
    extra = {spec.prediction.name: [], MODEL_ID_COLUMN: [], TIMESTAMP_COLUMN: [], REQUEST_ID_COLUMN: [],
             EXAMPLE_ID_COLUMN: []}
    if "request_time" in payload.columns and len(payload) > 1:
        payload = payload.sort_values("request_time", kind="stable")
    for row in payload.itertuples(index=False):
        if _missing(row.status_code) or int(row.status_code) != 200:
            skipped["status"] += 1
            continue
        if (not _missing(row.logging_error_codes) and len(row.logging_error_codes) > 0) or _missing(row.request) \
                or _missing(row.response):
            skipped["logging_error"] += 1
            continue
        try:
            columns = conform_columns(raw_columns(decode_body(row.request), spec.feature_names)[0], spec)
        except PayloadError:
            skipped["unparseable"] += 1
            continue
        n = len(next(iter(columns.values())))
        predictions = parse_response(row.response)
        if predictions is None or len(predictions) != n:
            skipped["unparseable"] += 1
            continue
        request_id = getattr(row, PAYLOAD_REQUEST_ID) if _missing(row.client_request_id) else row.client_request_id
        for name, values in columns.items():
            features[name].append(values)
        extra[spec.prediction.name].extend(predictions)
        extra[MODEL_ID_COLUMN].extend([version_of(row.served_entity_id)] * n)
        extra[TIMESTAMP_COLUMN].extend([row.request_time] * n)
        extra[REQUEST_ID_COLUMN].extend([request_id] * n)
        extra[EXAMPLE_ID_COLUMN].extend(example_id(request_id, i) for i in range(n))
    combined = pd.DataFrame({
        **{name: np.concatenate(parts) if parts else [] for name, parts in features.items()},
        **extra,
    })
    if not combined.empty:
        combined[TIMESTAMP_COLUMN] = pd.to_datetime(combined[TIMESTAMP_COLUMN], utc=True)
    combined = combined.drop_duplicates(KEYS, keep="first")
    return _reference_cast(combined, spec.processed_columns()), skipped


START = datetime(2030, 3, 1, tzinfo=UTC)


def _row(i, request, response, status=200, codes=(), client_id=None, entity="bakehouse_autolog_model-3",
         minutes=None):
    return {"databricks_request_id": f"db-{i:05d}-{uuid.UUID(int=i).hex[:8]}", "client_request_id": client_id,
            "request_time": (START + timedelta(minutes=i if minutes is None else minutes)).isoformat(),
            "status_code": status, "execution_duration_ms": 3, "request": request, "response": response,
            "served_entity_id": entity, "logging_error_codes": list(codes)}


def _answer(n, offset=0.0):
    return json.dumps({"predictions": [offset + k / 4 for k in range(n)]})


def _bad_bodies(names, good_split, good_records):
    """(request body, rows it would have) for every kind of unusable or unusual body."""
    split = json.loads(good_split)["dataframe_split"]
    record = json.loads(good_records)["dataframe_records"][0]
    first, int_col, str_col = names[0], "unitPrice", "product"

    def with_value(col, value):
        rows = [dict(record, **{col: value}), dict(record)]
        return json.dumps({"dataframe_records": rows}), 2

    return [
        ("", 1), ("   ", 1), ("{truncated", 1), ("[]", 1), ("null", 1), ('"text"', 1), ("{}", 1),
        (json.dumps({"dataframe_split": split, "instances": [record]}), 1),           # two formats
        (json.dumps({"dataframe_records": [record], "extra": 1}), 1),                  # unknown key
        (json.dumps({"dataframe_records": [record], "params": {"k": 1}}), 1),          # params: fine
        (json.dumps({"dataframe_split": {**split, "columns": split["columns"][:-1] + [first]}}), 2),
        (json.dumps({"dataframe_split": {**split, "columns": split["columns"][:-1]}}), 2),
        (json.dumps({"dataframe_split": {"columns": split["columns"][::-1],             # reordered: fine
                                         "data": [r[::-1] for r in split["data"]]}}), 2),
        (json.dumps({"dataframe_split": {**split, "data": [split["data"][0][:-1]]}}), 1),
        (json.dumps({"dataframe_split": {**split, "data": []}}), 0),
        (json.dumps({"dataframe_split": {**split, "data": [record]}}), 1),
        (json.dumps({"dataframe_split": {"columns": split["columns"] + ["more"],
                                         "data": [r + [1] for r in split["data"]]}}), 2),
        (json.dumps({"dataframe_records": [{k: v for k, v in record.items() if k != first},
                                           {first: record[first]}]}), 2),       # partial rows covering: fine
        (json.dumps({"dataframe_records": [{k: v for k, v in record.items() if k != first}]}), 1),
        (json.dumps({"dataframe_records": [record, list(record.values())]}), 2),
        (json.dumps({"dataframe_records": []}), 0),
        (json.dumps({"instances": [list(record.values())]}), 1),                         # positional: fine
        (json.dumps({"instances": [list(record.values())[:-1]]}), 1),
        (json.dumps({"inputs": {k: [v, v] for k, v in record.items()}}), 2),             # columns: fine
        (json.dumps({"inputs": {k: ([v] if k == first else [v, v]) for k, v in record.items()}}), 2),
        (json.dumps({"inputs": {k: v for k, v in record.items()}}), 1),
        (json.dumps({"inputs": [record, record]}), 2),                                   # records: fine
        with_value(int_col, "12"), with_value(int_col, True), with_value(int_col, 2.5),
        with_value(int_col, 3.0), with_value(int_col, None), with_value(str_col, 7), with_value(str_col, None),
        with_value(str_col, ["nested"]), with_value(str_col, {"a": 1}), with_value(int_col, [1, 2]),
        with_value(str_col, "caf\u00e9 \ud83e\udd50"),
        (json.dumps({"dataframe_records": [record]}).replace(f'"{int_col}": {record[int_col]}',
                                                             f'"{int_col}": NaN'), 1),   # json yes, orjson no
    ]


def payload_mix(spec, holdout, seed=0, repeat=3):
    """Payload rows of every format, retries, unknown entities and every kind of bad row, shuffled in time."""
    rng = np.random.default_rng(seed)
    frame = holdout[spec.feature_names]
    rows, i = [], 0
    for _ in range(repeat):
        for fmt in ("dataframe_split", "dataframe_records", "instances", "inputs"):
            for n in (1, 3):
                picked = frame.iloc[rng.integers(0, len(frame), n)].reset_index(drop=True)
                client = f"c-{i}" if i % 3 else None
                rows.append(_row(i, json.dumps(request_body(picked, fmt, client)), _answer(n, i), client_id=client))
                i += 1
        good_split = json.dumps(request_body(frame.head(2), "dataframe_split", None))
        good_records = json.dumps(request_body(frame.head(2), "dataframe_records", None))
        for body, n in _bad_bodies(spec.feature_names, good_split, good_records):
            rows.append(_row(i, body, _answer(n, i)))
            i += 1
        ok = json.dumps(request_body(frame.head(2), "dataframe_split", None))
        rows += [
            _row(i, ok, _answer(2), status=400), _row(i + 1, ok, _answer(2), status=500),
            _row(i + 2, ok, _answer(2), codes=["MAX_REQUEST_SIZE_EXCEEDED"]), _row(i + 3, None, _answer(2)),
            _row(i + 4, ok, None), _row(i + 5, ok, _answer(1)), _row(i + 6, ok, "not json"),
            _row(i + 7, ok, '{"predictions": 3}'), _row(i + 8, ok, '{"outputs": [1, 2]}'),
            _row(i + 9, ok, '{"predictions": [NaN, 1.5]}'), _row(i + 10, ok, '{"predictions": [1, 2]}'),
            _row(i + 11, ok, _answer(2), entity=None), _row(i + 12, ok, _answer(2), entity="a1b2c3"),
            # a client retrying one id: earlier and later answers, one of them logged before the first
            _row(i + 13, ok, _answer(2, 10), client_id="retry-1"),
            _row(i + 14, ok, _answer(2, 20), client_id="retry-1", minutes=-5),
            _row(i + 15, json.dumps(request_body(frame.head(3), "dataframe_split", None)), _answer(3, 30),
                 client_id="retry-1"),
        ]
        i += 16
    order = rng.permutation(len(rows))
    return payload_frame([rows[k] for k in order])


def _assert_same(payload, spec, version_of=version_of_entity):
    expected, skipped = reference_unpack(payload, spec, version_of)
    batch = unpack_payload(payload, spec, version_of)
    pd.testing.assert_frame_equal(batch.frame, expected)
    assert batch.skipped == skipped
    assert batch.payload_rows == len(payload)
    return batch


def test_bulk_unpack_equals_the_per_row_transform_on_every_format_and_bad_row(spec, holdout):
    payload = payload_mix(spec, holdout)
    batch = _assert_same(payload, spec)
    # the mix really exercises every branch: skips of each reason, retries collapsed, nulls kept
    assert batch.skipped["status"] == 6 and batch.skipped["logging_error"] == 9
    assert batch.skipped["unparseable"] > 40
    assert len(batch.frame) > 100 and batch.frame["example_id"].is_unique
    assert batch.frame["unitPrice"].isna().any() and batch.frame["product"].isna().any()
    assert set(batch.frame["model_version"].dropna()) == {"3"} and batch.frame["model_version"].isna().any()
    retried = batch.frame[batch.frame["request_id"] == "retry-1"]
    assert retried["example_id"].tolist() == ["retry-1:0", "retry-1:1", "retry-1:2"]
    assert retried["prediction"].tolist()[:2] == [20.0, 20.25]  # the earliest logged answer wins


def test_bulk_unpack_equals_the_per_row_transform_on_each_format_alone(spec, holdout):
    payload = payload_mix(spec, holdout, seed=1, repeat=2)
    for fmt in ("dataframe_split", "dataframe_records", "instances", "inputs", '"', "NaN"):
        part = payload[payload["request"].fillna("").str.contains(fmt, regex=False)]
        _assert_same(part, spec)
    _assert_same(payload.head(0), spec)
    _assert_same(payload.head(1), spec)


def test_bulk_unpack_handles_double_and_boolean_features_like_the_reference(spec, holdout):
    typed = spec.model_copy(update={"features": [*spec.features, Column(name="discount", type="double"),
                                                 Column(name="member", type="boolean")]})
    frame = holdout[spec.feature_names].head(4).assign(discount=[0.5, 1, None, 2.25], member=[True, False, None, True])
    rows = [_row(k, json.dumps(request_body(frame, fmt, None)), _answer(4)) for k, fmt in
            enumerate(("dataframe_split", "dataframe_records", "instances", "inputs"))]
    record = json.loads(rows[1]["request"])["dataframe_records"][0]
    for k, (col, value) in enumerate([("discount", "x"), ("discount", True), ("member", 1), ("member", "yes")]):
        rows.append(_row(10 + k, json.dumps({"dataframe_records": [dict(record, **{col: value})]}), _answer(1)))
    batch = _assert_same(payload_frame(rows), typed)
    assert batch.skipped["unparseable"] == 4
    assert str(batch.frame["discount"].dtype) == "Float64" and str(batch.frame["member"].dtype) == "boolean"


def test_bulk_unpack_resolves_each_served_entity_once_with_the_given_resolver(spec, holdout):
    payload = payload_mix(spec, holdout, seed=2, repeat=1)
    calls = []

    def version_of(entity):
        calls.append(entity)
        return {"a1b2c3": "9"}.get(entity, version_of_entity(entity))

    batch = _assert_same(payload, spec, version_of)
    assert "9" in set(batch.frame["model_version"].dropna())
    calls.clear()
    unpack_payload(payload, spec, version_of)
    assert sorted(map(str, calls)) == sorted(map(str, set(calls))) and len(calls) == 3  # model-3, a1b2c3, none


@pytest.mark.parametrize("rows", [1, 5])
def test_bulk_unpack_keeps_arrow_list_error_codes_and_object_ones_alike(spec, holdout, rows):
    frame = holdout[spec.feature_names].head(rows)
    payload = payload_frame([_row(k, json.dumps(request_body(frame, "dataframe_split", None)), _answer(rows),
                                  codes=["X"] if k == 1 else ()) for k in range(3)])
    as_objects = payload.astype({"logging_error_codes": object})
    as_objects["logging_error_codes"] = [np.array(c, dtype=object) for c in payload["logging_error_codes"]]
    assert unpack_payload(payload, spec).skipped == unpack_payload(as_objects, spec).skipped == {
        "status": 0, "logging_error": 1, "unparseable": 0}
    _assert_same(as_objects, spec)
