"""Unpacking served traffic into the processed table, exactly once, and merging late labels."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest

from workloads.errors import MlopsError
from workloads.labels import LabelError, ingest_labels, pending_labels_table
from workloads.ports.tables import LocalTables, get_tables
from workloads.serving.payload_log import payload_frame
from workloads.traffic import request_body, send_traffic
from workloads.unpacking import UnpackError, state_table, unpack, unpack_payload


class CrashOnWatermark(LocalTables):
    """Local tables that die when the unpack state is about to record a finished range (after its append)."""

    def __init__(self, warehouse, state_name):
        super().__init__(warehouse)
        self.state_name = state_name
        self.armed = True

    def merge(self, name, df, keys, update=True):
        if self.armed and name == self.state_name and df["pending_version"].isna().all():
            self.armed = False
            raise RuntimeError("simulated crash before the watermark was saved")
        return super().merge(name, df, keys, update)


def _processed(settings, spec) -> pd.DataFrame:
    return get_tables(settings).read(settings.table(spec.processed_table))


def test_unpack_served_traffic_then_merge_late_labels(server, serving_settings, spec, holdout):
    sent = send_traffic(server.url, spec, holdout, n=12, batch_size=3, settings=serving_settings, seed=1)
    assert sent.ok == 12 and sent.labels_recorded == 36
    bad = httpx.post(server.invocations_url, json={"dataframe_records": [{"product": "x"}]})
    assert bad.status_code == 400
    server.flush()

    first = unpack(serving_settings, spec)
    assert (first.payload_rows, first.examples_written, first.skipped["status"]) == (13, 36, 1)
    processed = _processed(serving_settings, spec)
    assert list(processed.columns) == [c.name for c in spec.processed_columns()]
    assert set(processed["request_id"]) == set(sent.client_request_ids)
    assert processed["example_id"].is_unique
    assert set(processed["model_version"]) == {"1"}
    assert processed["quantity"].isna().all()
    assert str(processed["timestamp"].dtype) == "datetime64[us, UTC]"
    from deltalake import DeltaTable

    from workloads.ports.tables import LocalTables

    table = DeltaTable(str(LocalTables(serving_settings.warehouse).path(serving_settings.table(spec.processed_table))))
    assert table.metadata().configuration == spec.processed_table_properties()  # as infra declares on Databricks

    again = unpack(serving_settings, spec)
    assert again.examples_written == 0 and again.payload_rows == 0
    assert len(_processed(serving_settings, spec)) == 36

    more = send_traffic(server.url, spec, holdout, n=5, batch_size=1, settings=serving_settings, seed=2,
                        fmt="instances")
    server.flush()
    assert unpack(serving_settings, spec).examples_written == 5

    result = ingest_labels(serving_settings, spec)
    assert (result.received, result.matched, result.updated, result.unmatched) == (41, 41, 41, 0)
    labelled = _processed(serving_settings, spec)
    assert labelled["quantity"].notna().all()
    pending_name = serving_settings.table(pending_labels_table(spec))
    assert get_tables(serving_settings).read(pending_name).empty
    # the labels are the real quantities of the transactions that were sent
    truth = get_tables(serving_settings).read(pending_name, version=get_tables(serving_settings).version(
        pending_name) - 1)
    joined = labelled.merge(truth, on="example_id", suffixes=("", "_truth"))
    assert len(joined) == 41 and (joined["quantity"] == joined["quantity_truth"]).all()
    assert set(labelled["request_id"]) == set(sent.client_request_ids) | set(more.client_request_ids)
    assert ingest_labels(serving_settings, spec).received == 0


def test_labels_waiting_for_their_unpack_stay_pending(server, serving_settings, spec, holdout):
    send_traffic(server.url, spec, holdout, n=3, settings=serving_settings)
    server.flush()
    early = ingest_labels(serving_settings, spec)
    assert (early.received, early.matched, early.unmatched) == (3, 0, 3)  # nothing unpacked yet
    unpack(serving_settings, spec)
    late = ingest_labels(serving_settings, spec)
    assert (late.matched, late.updated, late.unmatched) == (3, 3, 0)


def test_crash_between_merge_and_watermark_neither_duplicates_nor_loses(server, serving_settings, spec, holdout):
    send_traffic(server.url, spec, holdout, n=10, batch_size=2, settings=None, seed=3)
    server.flush()
    flaky = CrashOnWatermark(serving_settings.warehouse, serving_settings.table(state_table(spec)))
    with pytest.raises(RuntimeError, match="simulated crash"):
        unpack(serving_settings, spec, tables=flaky)
    assert len(_processed(serving_settings, spec)) == 20  # merged, but the watermark was not saved

    send_traffic(server.url, spec, holdout, n=4, batch_size=2, settings=None, seed=4)
    server.flush()
    rerun = unpack(serving_settings, spec, tables=flaky)
    assert rerun.payload_rows == 14 and rerun.examples_written == 8  # the range redone (nothing new), then the rest
    processed = _processed(serving_settings, spec)
    assert len(processed) == 28 and processed["example_id"].is_unique


def test_labels_from_a_csv_by_request_id(server, serving_settings, spec, holdout, tmp_path):
    sent = send_traffic(server.url, spec, holdout, n=4, batch_size=2, settings=None, seed=5)
    server.flush()
    unpack(serving_settings, spec)
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": sent.client_request_ids[:3] + ["never-sent"], "label": [7, 8, 9, 10]}).to_csv(
        csv, index=False)
    result = ingest_labels(serving_settings, spec, source=str(csv))
    assert (result.received, result.matched, result.updated, result.unmatched) == (4, 6, 6, 1)
    processed = _processed(serving_settings, spec).set_index("request_id")
    assert processed.loc[sent.client_request_ids[0], "quantity"].tolist() == [7, 7]
    assert processed.loc[sent.client_request_ids[3], "quantity"].isna().all()
    with pytest.raises(LabelError, match="not a CSV file"):
        ingest_labels(serving_settings, spec, source="nowhere")

    from deltalake import write_deltalake

    example = f"{sent.client_request_ids[3]}:1"
    write_deltalake(str(tmp_path / "labels_delta"), pd.DataFrame({"example_id": [example], "quantity": [11]}))
    by_example = ingest_labels(serving_settings, spec, source=str(tmp_path / "labels_delta"))
    assert (by_example.matched, by_example.updated) == (1, 1)
    processed = _processed(serving_settings, spec).set_index("example_id")
    assert processed.loc[example, "quantity"] == 11
    assert pd.isna(processed.loc[f"{sent.client_request_ids[3]}:0", "quantity"])
    assert ingest_labels(serving_settings, spec, source=str(tmp_path / "labels_delta")).updated == 0


def test_unpack_before_anything_was_served_says_what_to_do(serving_settings, spec):
    with pytest.raises(UnpackError, match="mlops serve"):
        unpack(serving_settings, spec)
    assert issubclass(UnpackError, MlopsError)


def _row(request, response, status=200, codes=(), client_id=None, entity="bakehouse_autolog_model-3") -> dict:
    return {"databricks_request_id": str(uuid.uuid4()), "client_request_id": client_id,
            "request_time": datetime(2030, 1, 2, tzinfo=UTC).isoformat(), "status_code": status,
            "execution_duration_ms": 3, "request": request, "response": response, "served_entity_id": entity,
            "logging_error_codes": list(codes)}


def test_transform_counts_and_skips_unusable_rows(spec, holdout):
    rows = holdout[spec.feature_names].head(2)
    good = json.dumps(request_body(rows, "dataframe_records", "ok-1"))
    answer = json.dumps({"predictions": [1.5, 2.5]})
    payload = payload_frame([
        _row(good, answer, client_id="ok-1"),
        _row(json.dumps(request_body(rows, "inputs", None)), answer),
        _row(good, '{"error_code": "BAD_REQUEST"}', status=400),
        _row(None, answer, codes=["MAX_REQUEST_SIZE_EXCEEDED"]),
        _row("{truncated", answer),
        _row(good, json.dumps({"predictions": [1.0]})),  # answer does not match the rows
    ])
    batch = unpack_payload(payload, spec)
    assert batch.skipped == {"status": 1, "logging_error": 1, "unparseable": 2}
    frame = batch.frame
    assert len(frame) == 4
    assert frame["prediction"].tolist() == [1.5, 2.5, 1.5, 2.5]
    assert set(frame["model_version"]) == {"3"}
    assert frame.loc[frame["request_id"] == "ok-1", "example_id"].tolist() == ["ok-1:0", "ok-1:1"]
    anonymous = frame[frame["request_id"] != "ok-1"]
    assert anonymous["request_id"].iloc[0] == payload["databricks_request_id"].iloc[1]
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2030-01-02", tz="UTC")


def test_databricks_served_entity_ids_resolve_through_the_system_table(tmp_path):
    from workloads.unpacking import served_entity_resolver

    tables = LocalTables(tmp_path / "warehouse")
    assert served_entity_resolver(tables)("bakehouse_autolog_model-4") == "4"  # no system table: our naming
    tables.write("system.serving.served_entities", pd.DataFrame({
        "served_entity_id": ["a1b2c3", "d4e5f6"], "entity_version": ["7", "8"], "entity_name": ["m", "m"]}))
    version_of = served_entity_resolver(tables)
    assert version_of("d4e5f6") == "8"
    assert version_of("unknown-entity") is None
    assert version_of(None) is None
