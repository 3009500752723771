"""``mlops --backend databricks status``: the same command, end to end, on the Databricks runtime's clients.

The registry is read by MLflow's Unity Catalog client and the endpoint by databricks-sdk, both against a
recording server answering with the clients' own message types (MLflow's UC registry protos, the SDK's
``ServingEndpointDetailed``); the verdict and audit tables are read through Spark (local pyspark standing in for
the workspace's session); the last alert from the home's outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.fakes import json_server

SCHEMA = "status_sch"


@pytest.fixture
def databricks_settings(spark, home):
    from workloads.settings import load_settings

    spark.sql(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    return load_settings(home=home, backend="databricks", catalog="spark_catalog", schema=SCHEMA)


def _model_version(name: str, version: int, aliases: list[str] = (), tags: dict[str, str] | None = None) -> dict:
    """A Unity Catalog model version as MLflow's UC registry protocol carries it."""
    import json

    from mlflow.protos.databricks_uc_registry_messages_pb2 import (
        ModelVersion,
        ModelVersionTag,
        RegisteredModelAlias,
    )
    from mlflow.utils.proto_json_utils import message_to_json

    mv = ModelVersion(name=name, version=str(version), creation_timestamp=1_700_000_000_000 + version,
                      status="READY", source=f"models:/m-{version}",
                      storage_location=f"s3://bucket/models/{version}",
                      aliases=[RegisteredModelAlias(alias=a, version=str(version)) for a in aliases],
                      tags=[ModelVersionTag(key=k, value=v) for k, v in (tags or {}).items()])
    return json.loads(message_to_json(mv))


def test_status_on_databricks_reads_the_uc_registry_the_endpoint_and_the_tables(databricks_settings, monkeypatch,
                                                                                 capsys):
    from databricks.sdk.service.serving import ServingEndpointDetailed

    from workloads import registry
    from workloads.alerts.send import notify
    from workloads.cli import main
    from workloads.promotion import PromotionRecord, write_audit
    from workloads.specs import load_spec
    from workloads.watcher.evaluation import Evaluation, ObservedMetrics
    from workloads.watcher.steps import record_verdict

    settings = databricks_settings
    spec = load_spec("bakehouse_autolog")
    model = settings.registered_model(spec.name)
    aliases = {"champion": 7, "previous": 6}
    record_verdict(settings, spec, Evaluation(False, "not enough data", ["window has 40 rows < 200"], [],
                                              "2026-11-26"),
                   ObservedMetrics(window_start="2026-11-26T00:00:00+00:00", rows=40, labelled_rows=40))
    write_audit(settings, PromotionRecord(spec.name, "promote", 6, 7, {}, {}, "paired comparison: gain 0.4",
                                          "watcher", datetime(2026, 11, 25, 3, 0, tzinfo=UTC), settings.env))
    calls = []

    def handle(method, path, query, body, headers):
        calls.append((method, path))
        if path == "/api/2.0/mlflow/unity-catalog/registered-models/alias":
            alias = query["alias"][0]
            if query["name"] == [model] and alias in aliases:
                return 200, {"model_version": _model_version(model, aliases[alias], [alias])}
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"alias {alias} not found"}
        if path == "/api/2.0/mlflow/unity-catalog/model-versions/search":  # no tags, no aliases, as UC answers
            assert query["filter"] == [f"name = '{model}'"]
            return 200, {"model_versions": [_model_version(model, v) for v in (5, 6, 7)]}
        if path == "/api/2.0/mlflow/unity-catalog/model-versions/get" and query["name"] == [model]:
            version = int(query["version"][0])
            return 200, {"model_version": _model_version(
                model, version, [a for a, held in aliases.items() if held == version],
                {"passed_thresholds": str(version != 5).lower()})}
        if path == f"/api/2.0/serving-endpoints/{spec.endpoint_name}":
            return 200, ServingEndpointDetailed.from_dict({
                "name": spec.endpoint_name, "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
                "config": {"served_entities": [{"name": spec.databricks_entity_name, "entity_name": model,
                                                "entity_version": "7"}]}}).as_dict()
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no {method} {path}"}

    def status_text() -> str:
        code = main(["--home", str(settings.home), "--backend", "databricks", "--catalog", "spark_catalog",
                     "--schema", SCHEMA, "status", "-m", spec.name])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return "".join(captured.out.replace("│", " ").split())  # borders, spaces and folded lines taken out

    def squeezed(text: str) -> str:
        return "".join(text.split())

    monkeypatch.delenv("MLOPS_ALERT_OUTBOX", raising=False)
    with json_server(handle) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-test")
        versions = registry.list_versions(settings, spec)
        notify(settings, "promotion", spec.name, f"{spec.name}: v7 promoted over v6")  # outbox off on Databricks
        without_outbox = status_text()
        monkeypatch.setenv("MLOPS_ALERT_OUTBOX", "true")
        notify(settings, "promotion", spec.name, f"{spec.name}: v7 promoted over v6")
        out = status_text()
    assert [(v.version, v.aliases, v.tags) for v in versions] == [
        (5, (), {"passed_thresholds": "false"}), (6, ("previous",), {"passed_thresholds": "true"}),
        (7, ("champion",), {"passed_thresholds": "true"})]
    assert squeezed("last alert not kept here: the outbox is off, alerts go to the configured email, webhooks or "
                    f"SNS (MLOPS_ALERT_OUTBOX=true also keeps them in {settings.home / 'alerts.jsonl'})"
                    ) in without_outbox
    for expected in (f"{spec.name} [dev] {model}", "versions v6 (previous), v7 (champion); 1 more without alias",
                     f"endpoint up {url}/serving-endpoints/{spec.endpoint_name}/invocations, serving v7",
                     "last verdict not enough data window 2026-11-26T00:00:00+00:00 (40 rows)",
                     "window has 40 rows < 200",
                     "last promotion promote v6 -> v7 at 2026-11-25 03:00:00 by watcher: paired comparison: gain 0.4",
                     "last alert promotion at", f"{spec.name}: v7 promoted over v6"):
        assert squeezed(expected) in out, (expected, out)
    assert "unreadable" not in out + without_outbox
    assert ("GET", f"/api/2.0/serving-endpoints/{spec.endpoint_name}") in calls
    assert ("GET", "/api/2.0/mlflow/unity-catalog/model-versions/search") in calls


def test_without_databricks_auth_the_endpoint_is_unknown_and_says_why(home, monkeypatch):
    from workloads.settings import load_settings
    from workloads.specs import load_spec
    from workloads.status import endpoint_state

    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(home / "no-databrickscfg"))
    settings = load_settings(home=home, backend="databricks")
    state = endpoint_state(settings, load_spec("bakehouse_autolog"))
    assert (state.url, state.state) == (None, "unknown")
    assert state.detail.startswith("cannot authenticate to Databricks: ")
    assert state.detail.endswith("set DATABRICKS_HOST and DATABRICKS_TOKEN (or a profile)")
