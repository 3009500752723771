"""Traffic: the drift hook rewrites what is sent (and its truth); a shiftable clock moves request time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from workloads.clock import ShiftableClock
from workloads.labels import pending_labels_table
from workloads.ports.tables import get_tables
from workloads.serving.champion import direct_predictor
from workloads.serving.server import start_server
from workloads.traffic import TrafficError, send_traffic
from workloads.unpacking import unpack


def test_transform_hook_sends_drifted_rows_into_a_later_window(serving_settings, spec, holdout):
    clock = ShiftableClock()
    with start_server(serving_settings, spec, clock=clock, flush_interval=0.2) as handle:
        send_traffic(handle.url, spec, holdout, n=4, settings=serving_settings, seed=7)
        clock.advance(timedelta(days=3))

        def drift(rows):
            return rows.assign(product="Tokyo Tidbits", unitPrice=rows["unitPrice"] * 3, quantity=99)

        drifted = send_traffic(handle.url, spec, holdout, n=4, batch_size=2, transform=drift,
                               settings=serving_settings, seed=8, request_prefix="sim-x-")
        assert drifted.ok == 4 and drifted.rows == 8
        assert all(cid.startswith("sim-x-") for cid in drifted.client_request_ids)
        handle.flush()
    unpack(serving_settings, spec)
    processed = get_tables(serving_settings).read(serving_settings.table(spec.processed_table))
    late = processed[processed["request_id"].isin(drifted.client_request_ids)]
    early = processed[~processed["request_id"].isin(drifted.client_request_ids)]
    assert len(late) == 8 and len(early) == 4
    assert set(late["product"]) == {"Tokyo Tidbits"}
    assert late["timestamp"].min() - early["timestamp"].max() > timedelta(days=2, hours=23)
    pending = get_tables(serving_settings).read(serving_settings.table(pending_labels_table(spec)))
    assert set(pending.loc[pending["request_id"].isin(drifted.client_request_ids), "quantity"]) == {99}


def test_traffic_that_the_endpoint_rejects_is_reported(server, serving_settings, spec, holdout):
    result = send_traffic(server.url, spec, holdout, n=3, transform=lambda rows: rows.assign(hour="late"),
                          settings=serving_settings)
    assert (result.ok, result.failed, result.labels_recorded) == (0, 3, 0)
    assert "column 'hour' expects bigint" in result.errors[0]
    with pytest.raises(TrafficError, match="batch_size"):
        send_traffic(server.url, spec, holdout, n=1, batch_size=0)


def test_only_scikit_learn_models_take_the_direct_path():
    class Meta:
        def __init__(self):
            self.flavors = {"python_function": {"loader_module": "mlflow.pyfunc.model"}}

    class PythonModel:
        metadata = Meta()

    assert direct_predictor(PythonModel()) is None
    assert direct_predictor(object()) is None
