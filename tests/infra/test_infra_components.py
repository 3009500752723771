"""Each component on its own under Pulumi mocks: its outputs and the inputs of the resources it declares."""

from __future__ import annotations

import json

import pulumi
import pytest
from infra_helpers import resolved, typed_config

from infra.artifacts import locate_wheel
from infra.champion import ChampionLookup
from infra.offline import prepare
from infra.specs import resolve_spec
from workloads.specs import EXAMPLE_ID_COLUMN, REQUEST_ID_COLUMN


@pytest.fixture
def harness(fake_wheel):
    return prepare("dev", wheel=fake_wheel)


@pytest.fixture
def platform_parts(harness, fake_wheel):
    """A platform, built inside the test (mocks installed) by calling the returned function."""
    from infra.components.platform import Platform

    def build(config=None):
        config = config or typed_config("dev")
        return Platform("platform", config, locate_wheel(str(fake_wheel)))

    return build


@pulumi.runtime.test
def test_platform_uploads_the_wheel_content_addressed_into_the_volume(platform_parts, fake_wheel):
    platform = platform_parts()
    sha = locate_wheel(str(fake_wheel)).sha256

    def check(args):
        wheel_path, catalog, schema = args
        assert wheel_path == f"/Volumes/mlops_dev/bakehouse_ml/artifacts/wheels/{sha[:16]}/{fake_wheel.name}"
        assert (catalog, schema) == ("mlops_dev", "bakehouse_ml")

    return resolved(platform.wheel_path, platform.catalog_name, platform.models_schema.name).apply(check)


@pulumi.runtime.test
def test_platform_reuses_an_existing_catalog_with_additive_grants(platform_parts, harness):
    config = typed_config("dev", catalog={"name": "shared_catalog", "create": False})
    platform = platform_parts(config)
    assert platform.catalog is None

    def check(catalog_name):
        assert catalog_name == "shared_catalog"
        kinds = [r.type.rsplit(":", 1)[-1] for r in harness.resources]
        assert "Catalog" not in kinds
        grants = [r for r in harness.resources if r.type.endswith(":Grant")]
        assert {g.inputs["principal"] for g in grants} == {"data-scientists", "ml-engineers",
                                                           "0f1e2d3c-4b5a-4697-8887-a9b8c7d6e5f4",
                                                           *config.grants.cross_environment_readers,
                                                           *config.grants.preview_identities}
        assert all(g.inputs["privileges"] == ["USE_CATALOG"] for g in grants)

    # Wait for every catalog grant, not only the schema: the check reads them all from the mocks.
    ids = [g.id for g in platform.catalog_grants]
    return resolved(platform.catalog_name, platform.models_schema.id, *ids).apply(lambda a: check(a[0]))


@pulumi.runtime.test
def test_registry_names_the_uc_model_after_the_spec(harness, platform_parts):
    from infra.components.registry import ModelRegistry

    platform = platform_parts()
    registry = ModelRegistry("r", resolve_spec("bakehouse_autolog"), typed_config("dev"), platform.models_schema)

    def check(full_name):
        assert full_name == "mlops_dev.bakehouse_ml.bakehouse_autolog_model"

    return registry.full_name.apply(check)


@pulumi.runtime.test
def test_tables_take_their_columns_from_the_spec(harness, platform_parts):
    from infra.components.tables import InferenceTables

    spec = resolve_spec("bakehouse_large_order")
    tables = InferenceTables("t", spec, typed_config("dev"), platform_parts().models_schema, "wh-1")
    expected = [c.name for c in spec.processed_columns()]

    def check(args):
        processed_name, baseline_name, processed_cols, baseline_cols, properties = args
        assert processed_name == "mlops_dev.bakehouse_ml.bakehouse_large_order_inference"
        assert baseline_name == "mlops_dev.bakehouse_ml.bakehouse_large_order_baseline"
        assert [c.name for c in processed_cols] == expected
        assert {"prediction", "large_order", "model_version", "timestamp"} <= {c.name for c in processed_cols}
        assert [c.name for c in baseline_cols] == [n for n in expected if n not in (REQUEST_ID_COLUMN,
                                                                                               EXAMPLE_ID_COLUMN)]
        types = {c.name: c.type for c in processed_cols}
        assert types == {c.name: c.type.upper() for c in spec.processed_columns()}
        assert (types["timestamp"], types["model_version"]) == ("TIMESTAMP", "STRING")
        assert vars(properties) == {"delta.enableChangeDataFeed": "true",
                                    "delta.dataSkippingStatsColumns": "timestamp,large_order,prediction,model_version,request_id",
                                    "delta.columnMapping.mode": "name"}

    return resolved(tables.processed_table, tables.baseline_table, tables.processed.columns,
                             tables.baseline.columns, tables.processed.properties).apply(check)


@pulumi.runtime.test
def test_endpoint_serves_the_champion_version_with_the_inference_table(harness):
    from infra.components.serving import ServingEndpoint

    spec = resolve_spec("bakehouse_autolog")
    model = "mlops_dev.bakehouse_ml.bakehouse_autolog_model"
    serving = ServingEndpoint("s", spec, typed_config("dev"), model, ChampionLookup(model, 5))

    def check(args):
        name, url, config, gateway = args
        assert name == "bakehouse-autolog"
        assert url == "https://adb-1.1.azuredatabricks.net/serving-endpoints/bakehouse-autolog/invocations"
        (entity,) = config.served_entities
        assert (entity.entity_name, entity.entity_version) == (model, "5")
        assert (entity.workload_size, entity.scale_to_zero_enabled) == ("Small", True)
        assert config.traffic_config.routes[0].served_entity_name == entity.name
        assert config.traffic_config.routes[0].traffic_percentage == 100
        table = gateway.inference_table_config
        assert (table.enabled, table.catalog_name, table.schema_name, table.table_name_prefix) == (
            True, "mlops_dev", "bakehouse_ml", "bakehouse_autolog")
        assert not harness.warnings

    endpoint = serving.endpoint
    return resolved(serving.endpoint_name, serving.endpoint_url, endpoint.config,
                             endpoint.ai_gateway).apply(check)


@pulumi.runtime.test
def test_endpoint_is_deferred_with_a_warning_without_a_champion(harness):
    from infra.components.serving import ServingEndpoint

    spec = resolve_spec("bakehouse_autolog")
    serving = ServingEndpoint("s", spec, typed_config("dev"), "m", ChampionLookup("c.s.m", None, "no 'champion' alias yet"))
    assert serving.endpoint is None and serving.endpoint_name is None

    def check(urn):
        assert not [r for r in harness.resources if r.type.endswith("ModelServing")]
        assert any("deferred" in w and "no 'champion' alias yet" in w for w in harness.warnings)

    return serving.urn.apply(check)


@pulumi.runtime.test
def test_monitor_profiles_the_processed_table_against_the_baseline(harness, platform_parts):
    from infra.components.monitor import InferenceMonitor

    spec = resolve_spec("bakehouse_large_order")
    config = typed_config("dev", schemas={"models": "bakehouse_ml", "monitoring": "bakehouse_monitoring"})
    platform = platform_parts(config)
    monitor = InferenceMonitor("m", spec, config, "c.s.processed", "c.s.baseline", platform.monitoring_schema, "wh")

    def check(args):
        table, baseline, output_schema, log, schedule, notifications, assets, slicing = args
        assert (table, baseline) == ("c.s.processed", "c.s.baseline")
        assert output_schema == "mlops_dev.bakehouse_monitoring"
        assert log.problem_type == "PROBLEM_TYPE_CLASSIFICATION"
        assert (log.prediction_col, log.label_col, log.model_id_col, log.timestamp_col) == (
            "prediction", "large_order", "model_version", "timestamp")
        assert log.granularities == ["1 hour", "1 day"]
        assert (schedule.quartz_cron_expression, schedule.timezone_id) == ("0 15 * * * ?", "America/Detroit")
        assert notifications.on_failure.email_addresses == ["ml-platform-dev@bakehouse.example.com"]
        assert assets == "/Workspace/Shared/lakehouse-mlops/dev/monitors/bakehouse_large_order"
        assert slicing is None
        assert monitor.drift_metrics_table == (
            "mlops_dev.bakehouse_monitoring.bakehouse_large_order_inference_drift_metrics")

    m = monitor.monitor
    return resolved(m.table_name, m.baseline_table_name, m.output_schema_name, m.inference_log, m.schedule,
                             m.notifications, m.assets_dir, m.slicing_exprs).apply(check)


def test_job_tasks_read_the_metric_tables_where_the_monitor_writes_them():
    from infra.components.jobs import global_args

    config = typed_config("dev", schemas={"models": "bakehouse_ml", "monitoring": "bakehouse_monitoring"})
    args = global_args(config)
    assert args[args.index("--schema") + 1] == "bakehouse_ml"
    assert args[args.index("--monitoring-schema") + 1] == "bakehouse_monitoring"


@pulumi.runtime.test
def test_watcher_job_chains_unpack_monitor_evaluate_condition_retrain(harness):
    from infra.components.jobs import ModelJobs

    config = typed_config("prod")
    jobs = ModelJobs("j", resolve_spec("bakehouse_autolog"), config, "/Volumes/x/y/z/w.whl",
                     "/Shared/lakehouse-mlops/prod/mlops_step", "dest-1")
    base = ["--backend", "databricks", "--env", "prod", "--catalog", "mlops_prod", "--schema", "bakehouse_ml",
            "--monitoring-schema", "bakehouse_ml"]

    def check(args):
        tasks, schedule, run_as, max_runs, environments, emails, hooks = args
        assert [t.task_key for t in tasks] == ["unpack", "monitor", "evaluate", "retrain_needed", "retrain"]
        by_key = {t.task_key: t for t in tasks}
        deps = {k: [(d.task_key, d.outcome) for d in (t.depends_ons or [])] for k, t in by_key.items()}
        assert deps == {"unpack": [], "monitor": [("unpack", None)], "evaluate": [("monitor", None)],
                        "retrain_needed": [("evaluate", None)], "retrain": [("retrain_needed", "true")]}
        condition = by_key["retrain_needed"].condition_task
        assert (condition.left, condition.op, condition.right) == (
            "{{tasks.evaluate.values.retrain_needed}}", "EQUAL_TO", "true")
        wheel_tasks = [t for t in tasks if t.python_wheel_task]
        assert [t.task_key for t in wheel_tasks] == ["unpack", "monitor", "retrain"]
        assert all((t.python_wheel_task.package_name, t.python_wheel_task.entry_point) == ("lakehouse_mlops", "mlops")
                   for t in wheel_tasks)
        assert all(t.environment_key == environments[0].environment_key for t in wheel_tasks)
        assert by_key["unpack"].python_wheel_task.parameters == [*base, "unpack", "--model", "bakehouse_autolog"]
        run_state = ["--run-state", "/Volumes/mlops_prod/bakehouse_ml/artifacts/runs/{{job.run_id}}"]
        assert by_key["monitor"].python_wheel_task.parameters == [
            *base, "watch", "monitor", "--model", "bakehouse_autolog", "--granularity", "1 day", *run_state]
        # evaluate sets the task value the condition reads: a notebook task (task values are notebook-only),
        # serverless without an environment_key, its `mlops` arguments in the `args` widget.
        evaluate = by_key["evaluate"]
        assert evaluate.python_wheel_task is None and evaluate.environment_key is None
        assert (evaluate.notebook_task.notebook_path, evaluate.notebook_task.source) == (
            "/Shared/lakehouse-mlops/prod/mlops_step", "WORKSPACE")
        assert json.loads(evaluate.notebook_task.base_parameters.args) == [
            *base, "watch", "evaluate", "--model", "bakehouse_autolog", "--granularity", "1 day",
            "--threshold", "rmse=max:4.5", *run_state]
        assert by_key["retrain"].python_wheel_task.parameters == [
            *base, "watch", "retrain", "--model", "bakehouse_autolog", "--threshold", "rmse=max:4.5", *run_state]
        assert (schedule.quartz_cron_expression, schedule.timezone_id, schedule.pause_status) == (
            "0 0 0/6 * * ?", "America/Detroit", "UNPAUSED")
        assert run_as.service_principal_name == "7c6b5a49-3827-4165-9483-a2b1c0d9e8f7"
        assert max_runs == 1
        assert environments[0].spec.dependencies == ["/Volumes/x/y/z/w.whl"]
        assert emails.on_failures == ["ml-platform@bakehouse.example.com", "ml-oncall@bakehouse.example.com"]
        assert hooks.on_failures[0].id == "dest-1"

    w = jobs.watcher
    return resolved(w.tasks, w.schedule, w.run_as, w.max_concurrent_runs, w.environments,
                             w.email_notifications, w.webhook_notifications).apply(check)


@pulumi.runtime.test
def test_training_is_on_demand_and_batch_is_daily(harness):
    from infra.components.jobs import ModelJobs

    jobs = ModelJobs("j", resolve_spec("bakehouse_decorators"), typed_config("dev"), "/Volumes/a/b/c/w.whl",
                     "/Shared/lakehouse-mlops/dev/mlops_step")

    def check(args):
        training_tasks, training_schedule, batch_tasks, batch_schedule, hooks = args
        assert [t.python_wheel_task.parameters[-3:] for t in training_tasks] == [
            ["train", "--model", "bakehouse_decorators"]]
        assert training_schedule is None
        assert [t.python_wheel_task.parameters[-3:] for t in batch_tasks] == [
            ["batch", "--model", "bakehouse_decorators"]]
        assert (batch_schedule.quartz_cron_expression, batch_schedule.timezone_id) == ("0 0 5 * * ?",
                                                                                       "America/Detroit")
        assert hooks is None

    return resolved(jobs.training.tasks, jobs.training.schedule, jobs.batch.tasks, jobs.batch.schedule,
                             jobs.watcher.webhook_notifications).apply(check)
