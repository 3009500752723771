"""The Databricks refresh path against a fake REST API: the real databricks-sdk serialises the requests."""

import pytest

from tests.fakes import json_server
from workloads.monitoring.metrics import latest_window_metrics
from workloads.monitoring.refresh import MonitorError, refresh_monitor
from workloads.ports.tables import LocalTables


class FakeWorkspace:
    """Serves the Unity Catalog monitor refresh endpoints with a scripted sequence of refresh states."""

    def __init__(self):
        self.states: list[str] = []
        self.requests: list[tuple[str, str, str | None]] = []
        self.start_status = 200
        self.host = ""

    def client(self):
        from databricks.sdk import WorkspaceClient

        return WorkspaceClient(host=self.host, token="fake-token", auth_type="pat")

    def handle(self, method: str, path: str, query: dict, body: dict | None, headers) -> tuple[int, dict]:
        self.requests.append((method, path, headers.get("Authorization")))
        if method == "GET" and path.endswith("/monitor/refreshes/42"):
            return 200, self._info()
        if method == "POST" and path.endswith("/monitor/refreshes"):
            if self.start_status != 200:
                return self.start_status, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                           "message": "Monitor does not exist"}
            return 200, self._info()
        return 404, {"error_code": "NOT_FOUND", "message": "no such path"}

    def _info(self) -> dict:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        body = {"refresh_id": 42, "state": state, "start_time_ms": 1767225600000}
        if state == "FAILED":
            body["message"] = "table has no timestamp column"
        return body


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
    assert api[0] == ("POST", f"/api/2.1/unity-catalog/tables/{table}/monitor/refreshes")
    assert api[1:] == [("GET", f"/api/2.1/unity-catalog/tables/{table}/monitor/refreshes/42")] * 3
    assert all(auth == "Bearer fake-token" for m, p, auth in fake.requests if "/api/" in p)
    # Evaluation reads identically on both runtimes.
    local_settings = refreshed[0]
    assert latest_window_metrics(settings, spec, tables=tables) == latest_window_metrics(local_settings, spec)


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
    for name in (spec.profile_metrics_table, spec.drift_metrics_table):  # as the monitor would have written them
        tables.write(monitoring.metrics_table(name), tables.read(settings.table(name)), mode="overwrite")
    fake.states = ["SUCCESS"]
    result = refresh_monitor(monitoring, spec, tables=tables, workspace=fake.client(), timeout_s=5, poll_s=0.01)
    assert result.profile_rows > 0
    assert latest_window_metrics(monitoring, spec, tables=tables) == latest_window_metrics(refreshed[0], spec)
