"""The Databricks refresh path against a fake REST API: the real databricks-sdk serialises the requests."""

import numpy as np
import pytest

from tests.fakes import json_server
from workloads.monitoring.metrics import latest_window_metrics
from workloads.monitoring.refresh import MonitorError, refresh_monitor
from workloads.ports.tables import LocalTables

TABLE_ID = "8a7c2f4e-1b3d-4e5f-9a0b-1c2d3e4f5a6b"


class FakeWorkspace:
    """Serves the monitor refresh endpoints of both APIs (the current Data Quality API, by table UUID, and the
    legacy Unity Catalog one, by name) with a scripted sequence of refresh states, in the SDK's own shapes."""

    def __init__(self):
        self.states: list[str] = []
        self.requests: list[tuple[str, str, str | None]] = []
        self.bodies: list[dict | None] = []
        self.start_status = 200
        self.current_api = True  # False: the workspace answers the data-quality paths with ENDPOINT_NOT_FOUND
        self.host = ""

    def client(self):
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        # A short retry budget: a fake that errors fails the test in seconds, not after the SDK's 5 minutes.
        return WorkspaceClient(config=Config(host=self.host, token="fake-token", auth_type="pat",
                                             retry_timeout_seconds=5))

    def handle(self, method: str, path: str, query: dict, body: dict | None, headers) -> tuple[int, dict]:
        from databricks.sdk.service.catalog import MonitorRefreshInfo, MonitorRefreshInfoState, TableInfo
        from databricks.sdk.service.dataquality import Refresh, RefreshState

        self.requests.append((method, path, headers.get("Authorization")))
        self.bodies.append(body)
        if method == "GET" and path.startswith("/api/2.1/unity-catalog/tables/") and "/monitor" not in path:
            name = path.rsplit("/", 1)[-1]
            return 200, TableInfo(full_name=name, table_id=TABLE_ID).as_dict()
        if path.startswith("/api/data-quality/v1/monitors/"):
            if not self.current_api:
                return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found for that path"}
            if self.start_status != 200:
                return self.start_status, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No monitor"}
            state = self._next_state()
            refresh = Refresh(object_type="table", object_id=TABLE_ID, refresh_id=42,
                              state=RefreshState(f"MONITOR_REFRESH_STATE_{state}"), start_time_ms=1767225600000,
                              message="table has no timestamp column" if state == "FAILED" else None)
            if (method == "POST" and path == f"/api/data-quality/v1/monitors/table/{TABLE_ID}/refreshes") or (
                    method == "GET" and path == f"/api/data-quality/v1/monitors/table/{TABLE_ID}/refreshes/42"):
                return 200, refresh.as_dict()
        if path.endswith(("/monitor/refreshes", "/monitor/refreshes/42")):
            if self.start_status != 200:
                return self.start_status, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                           "message": "Monitor does not exist"}
            state = self._next_state()
            info = MonitorRefreshInfo(refresh_id=42, state=MonitorRefreshInfoState(state), start_time_ms=1767225600000,
                                      message="table has no timestamp column" if state == "FAILED" else None)
            return 200, info.as_dict()
        return 404, {"error_code": "NOT_FOUND", "message": "no such path"}

    def _next_state(self) -> str:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


@pytest.fixture(scope="module")
def fake():
    workspace = FakeWorkspace()
    with json_server(workspace.handle) as url:
        workspace.host = url
        yield workspace


@pytest.fixture
def databricks(refreshed):
    settings, spec, _ = refreshed
    return settings.model_copy(update={"backend": "databricks"}), spec, LocalTables(settings.warehouse)


def test_refresh_waits_for_success_then_reads_the_same_tables(fake, databricks, refreshed):
    settings, spec, tables = databricks
    fake.states = ["PENDING", "RUNNING", "RUNNING", "SUCCESS"]
    fake.requests.clear()
    result = refresh_monitor(settings, spec, tables=tables, workspace=fake.client(), timeout_s=10, poll_s=0.01)
    assert (result.backend, result.refresh_id, result.state) == ("databricks", 42, "SUCCESS")
    assert result.profile_rows > 0 and result.drift_rows > 0
    api = [(m, p) for m, p, _ in fake.requests if "/api/" in p]
    table = settings.table(spec.processed_table)
    # The current API: the table's UUID from Unity Catalog, then the data-quality refresh of that table.
    assert api[0] == ("GET", f"/api/2.1/unity-catalog/tables/{table}")
    assert api[1] == ("POST", f"/api/data-quality/v1/monitors/table/{TABLE_ID}/refreshes")
    (start_body,) = [b for (m, p, _), b in zip(fake.requests, fake.bodies, strict=True) if m == "POST"]
    assert start_body == {"object_type": "table", "object_id": TABLE_ID}
    assert api[2:] == [("GET", f"/api/data-quality/v1/monitors/table/{TABLE_ID}/refreshes/42")] * 3
    assert all(auth == "Bearer fake-token" for m, p, auth in fake.requests if "/api/" in p)
    # After the refresh, evaluation reads the latest window the monitor wrote: its count and RMSE are those of the
    # processed rows in that window, computed here with numpy (not by the reader under test).
    metrics = latest_window_metrics(settings, spec, tables=tables)
    processed = tables.read(settings.table(spec.processed_table))
    in_window = processed[(processed["timestamp"] >= metrics.window_start)
                          & (processed["timestamp"] < metrics.window_end)]
    labelled = in_window.dropna(subset=[spec.label.name])
    assert metrics.row_count == len(in_window) > 0
    assert metrics.labelled_count == len(labelled)
    errors = labelled[spec.prediction.name].astype(float) - labelled[spec.label.name].astype(float)
    assert metrics.metric("root_mean_squared_error") == pytest.approx(float(np.sqrt(np.mean(errors ** 2))), rel=1e-9)


def test_a_workspace_without_the_data_quality_api_falls_back_to_the_legacy_one(fake, databricks):
    settings, spec, tables = databricks
    fake.states = ["RUNNING", "SUCCESS"]
    fake.current_api = False
    fake.requests.clear()
    try:
        result = refresh_monitor(settings, spec, tables=tables, workspace=fake.client(), timeout_s=10, poll_s=0.01)
    finally:
        fake.current_api = True
    assert (result.refresh_id, result.state) == (42, "SUCCESS")
    table = settings.table(spec.processed_table)
    api = [(m, p) for m, p, _ in fake.requests if "/api/" in p]
    assert api[-2:] == [("POST", f"/api/2.1/unity-catalog/tables/{table}/monitor/refreshes"),
                        ("GET", f"/api/2.1/unity-catalog/tables/{table}/monitor/refreshes/42")]


def test_refresh_times_out_bounded(fake, databricks):
    settings, spec, tables = databricks
    fake.states = ["RUNNING"]
    with pytest.raises(MonitorError, match="still RUNNING after"):
        refresh_monitor(settings, spec, tables=tables, workspace=fake.client(), timeout_s=0.3, poll_s=0.05)


def test_failed_refresh_and_missing_monitor_are_clear_errors(fake, databricks):
    settings, spec, tables = databricks
    fake.states = ["PENDING", "FAILED"]
    with pytest.raises(MonitorError, match="ended FAILED: table has no timestamp column"):
        refresh_monitor(settings, spec, tables=tables, workspace=fake.client(), timeout_s=5, poll_s=0.01)
    fake.start_status = 404
    try:
        with pytest.raises(MonitorError, match="is the monitor deployed"):
            refresh_monitor(settings, spec, tables=tables, workspace=fake.client(), timeout_s=5, poll_s=0.01)
    finally:
        fake.start_status = 200


def test_metric_tables_are_read_from_the_monitoring_schema(fake, databricks, refreshed):
    """Lakehouse Monitoring writes the metric tables to the monitor's output schema: with a separate monitoring
    schema the Databricks path reads them there."""
    settings, spec, tables = databricks
    monitoring = settings.model_copy(update={"monitoring_schema": "bakehouse_monitoring"})
    # as the monitor would have written them, told apart from the copies in the model's schema: every count + 1000
    profile = tables.read(settings.table(spec.profile_metrics_table))
    tables.write(monitoring.metrics_table(spec.profile_metrics_table), profile.assign(count=profile["count"] + 1000),
                 mode="overwrite")
    tables.write(monitoring.metrics_table(spec.drift_metrics_table),
                 tables.read(settings.table(spec.drift_metrics_table)), mode="overwrite")
    fake.states = ["SUCCESS"]
    result = refresh_monitor(monitoring, spec, tables=tables, workspace=fake.client(), timeout_s=5, poll_s=0.01)
    assert result.profile_rows > 0
    in_model_schema = latest_window_metrics(settings, spec, tables=tables)
    assert latest_window_metrics(monitoring, spec, tables=tables).row_count == in_model_schema.row_count + 1000
