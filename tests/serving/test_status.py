"""``mlops status``: versions and aliases, the endpoint (through databricks-sdk, locally against the running
endpoint), the last watcher verdict, promotion and alert; the Databricks endpoint in the documented shape."""

from __future__ import annotations

import pandas as pd

from tests.fakes import json_server
from workloads.serving.running import record_running
from workloads.serving.server import start_server
from workloads.status import endpoint_state, model_status
from workloads.watcher.evaluation import Evaluation, ObservedMetrics
from workloads.watcher.steps import record_verdict


def test_status_shows_versions_endpoint_verdict_promotion_and_alert(serving_settings, spec, capsys):
    from workloads import registry
    from workloads.alerts import notify
    from workloads.cli import main
    from workloads.promotion import promote

    settings = serving_settings
    assert model_status(settings, spec).endpoint.state == "not running"
    promote(settings, spec, 2, reason="test promotion", expected_champion=1)
    notify(settings, "promotion", spec.name, f"{spec.name}: v2 promoted over v1")
    record_verdict(settings, spec, Evaluation(True, "breach", ["rmse 9.8 > max 5"], [], "2026-11-26"),
                   ObservedMetrics(window_start="2026-11-26T00:00:00+00:00", rows=300, labelled_rows=300))
    with start_server(settings, spec, poll_interval=0.2) as handle:
        record_running(settings, spec.name, handle.url)
        status = model_status(settings, spec)
        assert status.problems == []
        assert dict(status.versions) == {1: ("previous",), 2: ("champion",)}
        assert status.endpoint.state == "up" and status.endpoint.served_versions == ("2",)
        assert status.endpoint.url == f"{handle.url}/serving-endpoints/{spec.endpoint_name}/invocations"
        assert status.verdict["health"] == "breach" and status.verdict["reasons"] == ["rmse 9.8 > max 5"]
        assert (status.promotion["action"], int(status.promotion["to_version"])) == ("promote", 2)
        assert status.alert["kind"] == "promotion"
        assert main(["--home", str(settings.home), "--env", "dev", "status", "-m", spec.name]) == 0
    # The table's text with its borders and line wrapping taken out.
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())
    for expected in ("v1 (previous), v2 (champion)", "up", "serving v2", "breach", "rmse 9.8 > max 5",
                     "promote v1 -> v2", "test promotion", "promotion at"):
        assert expected in out, expected
    assert registry.get_alias(settings, spec, "champion").version == 2


def test_on_databricks_the_endpoint_is_read_in_the_documented_shape(serving_settings, spec):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import ServingEndpointDetailed

    settings = serving_settings.model_copy(update={"backend": "databricks"})
    calls = []

    def handle(method, path, query, body, headers):
        calls.append((method, path))
        if path == f"/api/2.0/serving-endpoints/{spec.endpoint_name}":
            detailed = ServingEndpointDetailed.from_dict({
                "name": spec.endpoint_name, "state": {"ready": "NOT_READY", "config_update": "IN_PROGRESS"},
                "config": {"served_entities": [{"name": spec.databricks_entity_name, "entity_version": "7"}]}})
            return 200, detailed.as_dict()
        return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such endpoint"}

    with json_server(handle) as url:
        client = WorkspaceClient(host=url, token="t", auth_type="pat")
        state = endpoint_state(settings, spec, client=client)
        assert (state.state, state.served_versions, state.detail) == ("down", ("7",), "IN_PROGRESS")
        assert state.url == f"{url}/serving-endpoints/{spec.endpoint_name}/invocations"
        missing = endpoint_state(settings, spec.model_copy(update={"name": "other_model"}), client=client)
        assert missing.state == "not deployed"
    assert ("GET", f"/api/2.0/serving-endpoints/{spec.endpoint_name}") in calls
    assert not pd.isna(state.state)
