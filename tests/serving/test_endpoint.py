"""The local endpoint over real HTTP: formats, bad input, the databricks-sdk client, clock, champion swap."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest

from workloads import registry
from workloads.ports.tables import get_tables
from workloads.serving.server import start_server
from workloads.traffic import request_body


def payload_rows(settings, spec, handle):
    handle.flush()
    return get_tables(settings).read(settings.table(spec.payload_table))


def test_every_format_is_scored_and_logged_once(server, serving_settings, spec, holdout):
    rows = holdout[spec.feature_names].head(4)
    answers = {}
    with httpx.Client(timeout=30) as client:
        for fmt in ("dataframe_split", "dataframe_records", "instances", "inputs"):
            response = client.post(server.invocations_url, json=request_body(rows, fmt, f"fmt-{fmt}"))
            assert response.status_code == 200, response.text
            assert response.headers["served-model-name"] == "bakehouse_autolog_model-1"
            answers[fmt] = response.json()["predictions"]
        mlflow_path = client.post(f"{server.url}/invocations", json=request_body(rows, "dataframe_split", "mlflow"))
        assert mlflow_path.status_code == 200
    expected = answers["dataframe_split"]
    assert len(expected) == 4 and all(isinstance(p, float) for p in expected)
    assert all(answer == expected for answer in answers.values())
    assert mlflow_path.json()["predictions"] == expected
    # the direct scikit-learn call answers exactly what the full pyfunc path answers
    pyfunc = registry.load_model(serving_settings, spec, version=1)
    assert server.champion.current.direct is not None
    assert pyfunc.predict(rows.reset_index(drop=True)).tolist() == pytest.approx(expected, rel=1e-12)

    logged = payload_rows(serving_settings, spec, server)
    assert sorted(logged["client_request_id"]) == sorted([f"fmt-{f}" for f in answers] + ["mlflow"])
    assert logged["databricks_request_id"].is_unique
    assert set(logged["status_code"]) == {200}
    assert set(logged["served_entity_id"]) == {"bakehouse_autolog_model-1"}
    assert list(logged.columns) == [
        "databricks_request_id", "client_request_id", "request_date", "request_time", "status_code",
        "sampling_fraction", "execution_duration_ms", "request", "response", "served_entity_id",
        "logging_error_codes", "requester"]
    row = logged[logged["client_request_id"] == "fmt-inputs"].iloc[0]
    assert json.loads(row["request"]) == request_body(rows, "inputs", "fmt-inputs")
    assert json.loads(row["response"])["predictions"] == expected
    assert len(row["logging_error_codes"]) == 0


def test_bad_input_gets_4xx_with_error_and_a_payload_row(serving_settings, spec, holdout):
    rows = holdout[spec.feature_names].head(2)
    good = request_body(rows, "dataframe_split", None)
    huge = request_body(holdout[spec.feature_names].head(1).loc[[0] * 400], "dataframe_records", None)
    cases = {
        "malformed": (b'{"dataframe_split": ', 400, "MALFORMED_REQUEST", "not valid JSON"),
        "empty": (b"", 400, "MALFORMED_REQUEST", "empty"),
        "missing": (json.dumps(request_body(rows.drop(columns=["product"]), "dataframe_split", None)), 400,
                    "BAD_REQUEST", "missing columns ['product']"),
        "extra": (json.dumps(request_body(rows.assign(extra=1), "dataframe_split", None)), 400,
                  "BAD_REQUEST", "unexpected columns ['extra']"),
        "wrong_type": (json.dumps(request_body(rows.assign(hour="noon"), "dataframe_split", None)), 400,
                       "BAD_REQUEST", "column 'hour' expects"),
        "oversize": (json.dumps(huge), 413, "BAD_REQUEST", "byte limit"),
        # 5,000 levels of nesting (10 KB): the parser's recursion limit is the client's problem, not a 500.
        "deeply_nested": ('{"inputs": ' + "[" * 5000 + "]" * 5000 + "}", 400, "MALFORMED_REQUEST",
                          "nests JSON too deeply"),
    }
    with start_server(serving_settings, spec, max_body_bytes=20_000, flush_interval=0.2) as handle, \
            httpx.Client(timeout=30) as client:
        for name, (body, status, code, fragment) in cases.items():
            response = client.post(handle.invocations_url, content=body,
                                   headers={"content-type": "application/json"})
            assert response.status_code == status, (name, response.text)
            error = response.json()
            assert error["error_code"] == code, name
            assert fragment in error["message"], (name, error["message"])
            after = client.post(handle.invocations_url, json=good)
            assert after.status_code == 200, f"server stopped serving after {name}"
        logged = payload_rows(serving_settings, spec, handle)
    assert len(logged) == 2 * len(cases)
    statuses = logged.sort_values("request_time")["status_code"].tolist()
    assert statuses == [s for _, s, _, _ in cases.values() for s in (s, 200)]
    oversize = logged[logged["status_code"] == 413].iloc[0]
    assert list(oversize["logging_error_codes"]) == ["MAX_REQUEST_SIZE_EXCEEDED"]
    assert pd.isna(oversize["request"])
    malformed = logged[logged["request"] == '{"dataframe_split": '].iloc[0]
    assert json.loads(malformed["response"])["error_code"] == "MALFORMED_REQUEST"


def test_unknown_endpoint_is_404(server):
    response = httpx.post(f"{server.url}/serving-endpoints/nope/invocations", json={"inputs": {}})
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_databricks_sdk_client_gets_and_queries_the_local_endpoint(server, serving_settings, spec, holdout,
                                                                   caplog):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import DataframeSplitInput, EndpointStateReady

    client = WorkspaceClient(host=server.url, token="local-token")
    assert not [r for r in caplog.records if r.name.startswith("databricks") and r.levelname == "WARNING"]
    endpoint = client.serving_endpoints.get(spec.endpoint_name)
    assert endpoint.state.ready == EndpointStateReady.READY
    entity = endpoint.config.served_entities[0]
    assert entity.entity_name == serving_settings.registered_model(spec.name)
    assert entity.entity_version == "1"
    assert endpoint.ai_gateway.inference_table_config.table_name_prefix == spec.payload_prefix

    rows = holdout[spec.feature_names].head(3)
    split = json.loads(rows.to_json(orient="split", index=False))
    by_split = client.serving_endpoints.query(
        spec.endpoint_name, dataframe_split=DataframeSplitInput(columns=split["columns"], data=split["data"]),
        client_request_id="sdk-split")
    by_records = client.serving_endpoints.query(
        spec.endpoint_name, dataframe_records=json.loads(rows.to_json(orient="records")))
    assert len(by_split.predictions) == 3
    assert by_records.predictions == by_split.predictions
    assert by_split.served_model_name == "bakehouse_autolog_model-1"

    from databricks.sdk.errors import BadRequest

    with pytest.raises(BadRequest, match="missing columns"):
        client.serving_endpoints.query(spec.endpoint_name, dataframe_records=[{"product": "x"}])
    logged = payload_rows(serving_settings, spec, server)
    assert (logged["client_request_id"] == "sdk-split").sum() == 1
    assert sorted(logged["status_code"].tolist()) == [200, 200, 400]


def test_injected_clock_sets_request_time(serving_settings, spec, holdout):
    moment = datetime(2030, 3, 4, 5, 6, 7, tzinfo=UTC)
    with start_server(serving_settings, spec, clock=lambda: moment) as handle:
        response = httpx.post(handle.invocations_url,
                              json=request_body(holdout[spec.feature_names].head(1), "inputs", "clocked"))
        assert response.status_code == 200
        logged = payload_rows(serving_settings, spec, handle)
    assert logged["request_time"].tolist() == [moment]
    assert str(logged["request_date"].iloc[0]) == "2030-03-04"


def test_champion_swap_under_concurrent_requests(server, serving_settings, spec, holdout):
    """Move the alias mid-burst: no request fails, and each is logged with the version that scored it."""
    body = request_body(holdout[spec.feature_names].head(1), "dataframe_split", None)
    results: list[tuple[str, int, str | None, float | None]] = []
    lock = threading.Lock()
    swapped_at = threading.Event()
    stop = threading.Event()

    def client_loop(worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(400):  # bounded; normally ends once the new version has answered a while
                if stop.is_set():
                    return
                cid = f"w{worker}-{i}"
                response = client.post(server.invocations_url, json={**body, "client_request_id": cid})
                prediction = response.json()["predictions"][0] if response.status_code == 200 else None
                with lock:
                    results.append((cid, response.status_code, response.headers.get("served-model-name"),
                                    prediction))

    workers = [threading.Thread(target=client_loop, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while len(results) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    registry.set_alias(serving_settings, spec, registry.CHAMPION, 2)
    swapped_at.set()
    while time.monotonic() < deadline:
        with lock:
            on_new = sum(1 for r in results if r[2] == "bakehouse_autolog_model-2")
        if on_new >= 40:
            break
        time.sleep(0.02)
    stop.set()
    for w in workers:
        w.join(timeout=60)

    assert all(status == 200 for _, status, _, _ in results), [r for r in results if r[1] != 200][:3]
    versions = {entity for _, _, entity, _ in results}
    assert versions == {"bakehouse_autolog_model-1", "bakehouse_autolog_model-2"}
    for _, _, entity, prediction in results:
        # version 2 was trained on quantity + 1000: its answers are unmistakable
        assert (prediction > 500) == entity.endswith("-2")
    logged = payload_rows(serving_settings, spec, server).set_index("client_request_id")
    assert len(logged) == len(results) and logged.index.is_unique
    for cid, _, entity, _ in results:
        assert logged.loc[cid, "served_entity_id"] == entity
    assert server.served_version == 2
    assert server.champion.swaps == 1


def test_an_internal_failure_is_a_logged_500_and_serving_goes_on(server, serving_settings, spec, holdout):
    from workloads.serving.champion import ServedModel

    good = server.champion.current
    server.champion._current = ServedModel(9, "broken-9", None, direct=lambda frame: [object()])
    body = request_body(holdout[spec.feature_names].head(1), "dataframe_split", "broken")
    response = httpx.post(server.invocations_url, json=body)
    assert response.status_code == 500 and response.json()["error_code"] == "INTERNAL_ERROR"
    server.champion._current = good
    assert httpx.post(server.invocations_url, json=body).status_code == 200
    logged = payload_rows(serving_settings, spec, server)
    assert sorted(zip(logged["status_code"], logged["served_entity_id"], strict=True)) == [
        (200, "bakehouse_autolog_model-1"), (500, "broken-9")]


def test_serve_records_its_url_so_traffic_finds_it_and_a_dead_record_is_ignored(serving_settings, spec):
    import os
    import subprocess
    import sys
    import time

    from tests.fakes import free_port
    from workloads.serving.running import endpoint_url, record_path, running_url

    port = free_port()
    env = {**os.environ, "MLOPS_HOME": str(serving_settings.home)}
    server = subprocess.Popen([sys.executable, "-m", "workloads.cli", "serve", "-m", spec.name, "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while running_url(serving_settings, spec.name) is None and time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.2)
        assert running_url(serving_settings, spec.name) == f"http://127.0.0.1:{port}"
        sent = subprocess.run([sys.executable, "-m", "workloads.cli", "traffic", "-m", spec.name, "--n", "3"],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert f"endpoint http://127.0.0.1:{port} from the running `mlops serve`" in sent.stdout.replace("\n", " ")
        assert "3 ok, 0 failed" in sent.stdout
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert not record_path(serving_settings, spec.name).exists()  # a clean stop removes the record
    # A killed server leaves a record behind: its pid is gone, so it is ignored (and removed).
    record_path(serving_settings, spec.name).write_text('{"url": "http://127.0.0.1:1", "pid": 999999999}')
    url, source = endpoint_url(serving_settings, spec.name, None)
    assert url == "http://127.0.0.1:8080" and "no `mlops serve` recorded" in source
    assert not record_path(serving_settings, spec.name).exists()
