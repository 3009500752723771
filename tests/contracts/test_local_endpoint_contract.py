"""The local serving endpoint (workloads/serving/app.py) against what Databricks Model Serving documents.

The real app runs on 127.0.0.1 with a stub champion (a constant model) and the real payload logger; the real
databricks-sdk client queries it. Checked:

| contract | source | test |
|---|---|---|
| GET /api/2.0/serving-endpoints/{name} answers ``ServingEndpointDetailed`` (every field known to the SDK) | https://docs.databricks.com/api/workspace/servingendpoints/get; databricks-sdk ``ServingEndpointDetailed`` | test_the_endpoint_is_described_in_the_documented_shape |
| the query's documented non-input fields (``client_request_id``, ``usage_context``, ``extra_params``; MLflow's ``params``) are accepted beside any one input format; the answer is a ``QueryEndpointResponse`` | https://docs.databricks.com/api/workspace/servingendpoints/query; databricks-sdk ``serving_endpoints.query``; mlflow/pyfunc/scoring_server ``_split_data_and_params`` | test_documented_request_fields_are_accepted |
| payload ``requester`` is "the ID of the user or service principal whose permissions are used for the invocation request", ``client_request_id`` is the client's | AI Gateway inference table column comments, https://learn.microsoft.com/azure/databricks/ai-gateway/inference-tables | test_payload_rows_name_the_serving_identity_not_the_client_address |
| errors are ``{"error_code", "message"}`` with Databricks error codes, at the HTTP status those codes carry; an over-size body is a 413 the SDK does not read as a rate limit | https://docs.databricks.com/api/account/errors; ``mlflow.protos.databricks_pb2.ErrorCode`` and ``mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS``; databricks-sdk ``errors.platform`` mappings; 16 MB limit: https://docs.databricks.com/en/machine-learning/model-serving/model-serving-limits.html | test_errors_carry_databricks_codes_at_their_statuses |
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import uvicorn
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import BadRequest, DatabricksError, NotFound, TooManyRequests
from databricks.sdk.service import serving

from workloads.ports.tables import get_tables
from workloads.serving.app import EndpointConfig, create_app
from workloads.serving.champion import ServedModel, served_entity_name
from workloads.serving.payload_log import PayloadLogger
from workloads.specs import load_spec

MAX_BODY = 4096


class ConstantModel:
    def predict(self, frame):
        return np.full(len(frame), 2.5)


@pytest.fixture
def endpoint(settings, monkeypatch, tmp_path):
    """The real app for one model, its payload logger, and the base URL; the serving identity is MLOPS_ACTOR."""
    monkeypatch.setenv("MLOPS_ACTOR", "7c6b5a49-3827-4165-9483-a2b1c0d9e8f7")  # a service principal's app id
    spec = load_spec("bakehouse_autolog")
    champion = SimpleNamespace(current=ServedModel(4, served_entity_name(spec, 4), ConstantModel()), swaps=0)
    logger = PayloadLogger(get_tables(settings), settings.table(spec.payload_table), tmp_path / "wal",
                           flush_interval=0.1).open()
    app = create_app(EndpointConfig(settings=settings, spec=spec, max_body_bytes=MAX_BODY), champion, logger)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "local endpoint did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    yield SimpleNamespace(url=url, spec=spec, settings=settings, logger=logger)
    server.should_exit = True
    thread.join(timeout=10)
    logger.close()


def sdk(url: str) -> WorkspaceClient:
    return WorkspaceClient(config=Config(host=url, token="local", auth_type="pat", retry_timeout_seconds=5))


def split_of(spec, rows: int = 2) -> dict:
    return {"columns": spec.feature_names,
            "data": [["x" if c.is_categorical else 1 for c in spec.features] for _ in range(rows)]}


def test_the_endpoint_is_described_in_the_documented_shape(endpoint):
    name = endpoint.spec.endpoint_name
    raw = httpx.get(f"{endpoint.url}/api/2.0/serving-endpoints/{name}").json()
    assert serving.ServingEndpointDetailed.from_dict(raw).as_dict() == raw  # no field the API does not document
    got = sdk(endpoint.url).serving_endpoints.get(name)
    assert got.state.ready == serving.EndpointStateReady.READY
    assert [e.entity_version for e in got.config.served_entities] == ["4"]
    assert got.ai_gateway.inference_table_config.table_name_prefix == endpoint.spec.payload_prefix


def test_documented_request_fields_are_accepted(endpoint):
    spec, name = endpoint.spec, endpoint.spec.endpoint_name
    response = sdk(endpoint.url).serving_endpoints.query(
        name, dataframe_split=serving.DataframeSplitInput.from_dict(split_of(spec)), client_request_id="req-sdk",
        usage_context={"application": "contract-test"}, extra_params={"note": "ignored by custom models"})
    assert response.predictions == [2.5, 2.5]
    records = [dict(zip(spec.feature_names, row, strict=True)) for row in split_of(spec)["data"]]
    for body in ({"dataframe_records": records, "params": {"k": 1}},
                 {"instances": records, "usage_context": {"team": "ml"}},
                 {"inputs": {c: [r[c] for r in records] for c in spec.feature_names}, "extra_params": {"a": "b"}}):
        reply = httpx.post(f"{endpoint.url}/serving-endpoints/{name}/invocations", json=body)
        assert reply.status_code == 200, (body, reply.text)
        assert serving.QueryEndpointResponse.from_dict(reply.json()).as_dict() == reply.json()


def test_payload_rows_name_the_serving_identity_not_the_client_address(endpoint):
    name = endpoint.spec.endpoint_name
    client = sdk(endpoint.url)
    client.serving_endpoints.query(name, dataframe_split=serving.DataframeSplitInput.from_dict(split_of(endpoint.spec)),
                                   client_request_id="req-good")
    with pytest.raises(BadRequest):
        client.serving_endpoints.query(name, dataframe_records=[{"nope": 1}], client_request_id="req-bad")
    endpoint.logger.flush()
    rows = get_tables(endpoint.settings).read(endpoint.settings.table(endpoint.spec.payload_table))
    assert sorted(rows["client_request_id"]) == ["req-bad", "req-good"]
    assert set(rows["requester"]) == {"7c6b5a49-3827-4165-9483-a2b1c0d9e8f7"}  # never "127.0.0.1"


def test_errors_carry_databricks_codes_at_their_statuses(endpoint):
    from mlflow.exceptions import ERROR_CODE_TO_HTTP_STATUS
    from mlflow.protos.databricks_pb2 import ErrorCode

    spec = endpoint.spec
    invocations = f"{endpoint.url}/serving-endpoints/{spec.endpoint_name}/invocations"
    cases = {  # name: (url, body, expected status)
        "not JSON": (invocations, b'{"dataframe_split": ', 400),
        "empty": (invocations, b"", 400),
        "no input format": (invocations, json.dumps({"client_request_id": "r"}).encode(), 400),
        "two input formats": (invocations, json.dumps({"instances": [], "inputs": []}).encode(), 400),
        "undocumented key": (invocations, json.dumps({"dataframe_split": split_of(spec), "colums": []}).encode(), 400),
        "over the size limit": (invocations, json.dumps({"inputs": ["x" * MAX_BODY]}).encode(), 413),
        "unknown endpoint": (f"{endpoint.url}/serving-endpoints/nope/invocations",
                             json.dumps({"dataframe_split": split_of(spec)}).encode(), 404),
    }
    for case, (url, body, status) in cases.items():
        reply = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        error = reply.json()
        assert reply.status_code == status and set(error) == {"error_code", "message"}, (case, reply.text)
        assert error["error_code"] in ErrorCode.DESCRIPTOR.values_by_name, (case, error)  # a Databricks error code
        if reply.status_code != 413:  # 413 is HTTP's over-size status; no Databricks code maps to it
            assert ERROR_CODE_TO_HTTP_STATUS.get(error["error_code"], status) == status, (case, error)

    # The SDK reads each answer as the error it is: a bad body is not a rate limit (no back-off-and-resend).
    client = sdk(endpoint.url)
    with pytest.raises(DatabricksError) as oversize:
        client.serving_endpoints.query(spec.endpoint_name, inputs=["x" * MAX_BODY])
    assert not isinstance(oversize.value, TooManyRequests)
    with pytest.raises(BadRequest):
        client.serving_endpoints.query(spec.endpoint_name, instances=[{"unknown_column": 1}])
    with pytest.raises(NotFound):
        client.serving_endpoints.query("nope", instances=[{"unknown_column": 1}])
