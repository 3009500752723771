"""The whole program (the real infra/__main__.py) per stack under mocks: resources, wiring, deferral, protection,
linear growth, outputs, no deprecations."""

from __future__ import annotations

import base64
import json
import re
import warnings
from collections import Counter

import pulumi
import pytest
from infra_helpers import DEV_CHAMPIONS, MODELS, resolved

from infra.artifacts import WheelNotFoundError, locate_wheel
from infra.offline import prepare
from infra.runtime import SERVERLESS_ENVIRONMENT_VERSION
from infra.specs import resolve_spec

PER_MODEL = {"RegisteredModel": 1, "SqlTable": 2, "ModelServing": 1, "QualityMonitor": 1, "Job": 3, "Grants": 1,
             "Permissions": 1}


def kinds(evaluation, under: str = "") -> Counter:
    return Counter(r.type.rsplit(":", 1)[-1] for r in evaluation.resources if r.custom and under in r.name)


def test_dev_declares_the_platform_and_everything_per_model(dev):
    counts = kinds(dev)
    for kind, n in PER_MODEL.items():
        extra = {"Grants": 2, "Permissions": 1}.get(kind, 0)  # catalog/schema grants, step notebook ACL
        assert counts[kind] == n * len(MODELS) + extra, kind
    assert (counts["Catalog"], counts["Schema"], counts["Volume"], counts["File"]) == (1, 1, 1, 1)
    assert counts["SqlEndpoint"] == 0  # dev reuses a configured warehouse
    for model in MODELS:
        assert kinds(dev, model) == Counter(PER_MODEL)


def test_urns_are_unique_and_every_resource_is_parented_to_a_component(dev, prod):
    for evaluation in (dev, prod):
        urns = [r.urn for r in evaluation.resources]
        assert len(urns) == len(set(urns))
        components = {r.urn for r in evaluation.resources if not r.custom}
        stack_urn = f"urn:pulumi:{evaluation.stack}::lakehouse-mlops::pulumi:pulumi:Stack::lakehouse-mlops-{evaluation.stack}"
        for resource in evaluation.resources:
            if resource.custom:
                assert resource.parent in components, resource.urn
            else:
                assert resource.parent in components | {stack_urn}, resource.urn


def test_endpoint_serves_the_champion_of_its_registered_model(dev):
    for model, version in DEV_CHAMPIONS.items():
        spec = resolve_spec(model)
        endpoint = dev.get("ModelServing", name=f"{model}-endpoint")
        (entity,) = endpoint.inputs["config"]["servedEntities"]
        registered = dev.get("RegisteredModel", name=f"{model}-model").inputs
        assert entity["entityName"] == f"{registered['catalogName']}.{registered['schemaName']}.{registered['name']}"
        assert entity["entityVersion"] == str(version)
        assert endpoint.inputs["name"] == spec.endpoint_name
        table = endpoint.inputs["aiGateway"]["inferenceTableConfig"]
        assert table == {"enabled": True, "catalogName": "mlops_dev", "schemaName": "bakehouse_ml",
                         "tableNamePrefix": spec.payload_prefix}
        assert "servedModels" not in endpoint.inputs["config"]
        assert "autoCaptureConfig" not in endpoint.inputs["config"]
    assert dev.warnings == []


def test_champion_is_looked_up_through_databricks_sdk(dev):
    from infra.offline import REGISTRY_GET

    assert not [token for token, _ in dev.invokes if "getRegisteredModel" in token]  # no provider data source
    lookups = [(token, args) for token, args in dev.invokes if token == REGISTRY_GET]
    assert sorted(args["fullName"] for _, args in lookups) == [
        f"mlops_dev.bakehouse_ml.{m}_model" for m in MODELS]
    assert all(args["includeAliases"] is True for _, args in lookups)


def test_monitor_is_wired_to_processed_table_baseline_and_output_schema(dev):
    for model in MODELS:
        spec = resolve_spec(model)
        monitor = dev.get("QualityMonitor", name=f"{model}-monitor").inputs
        processed = dev.get("SqlTable", name=f"{model}-processed").inputs
        baseline = dev.get("SqlTable", name=f"{model}-baseline").inputs
        assert monitor["tableName"] == f"mlops_dev.bakehouse_ml.{processed['name']}" == \
            f"mlops_dev.bakehouse_ml.{spec.processed_table}"
        assert monitor["baselineTableName"] == f"mlops_dev.bakehouse_ml.{baseline['name']}"
        assert monitor["outputSchemaName"] == "mlops_dev.bakehouse_ml"
        assert monitor["inferenceLog"]["labelCol"] == spec.label.name
        assert monitor["warehouseId"] == "5a6b7c8d9e0f1a2b"


def test_jobs_install_the_uploaded_wheel_and_run_as_the_service_principal(dev, prod):
    for evaluation, env in ((dev, "dev"), (prod, "prod")):
        wheel_path = evaluation.get("File", name="wheel").inputs["path"]
        assert wheel_path.startswith(f"/Volumes/mlops_{env}/bakehouse_ml/artifacts/wheels/")
        for job in evaluation.of_type(":Job"):
            (environment,) = job.inputs["environments"]
            assert environment["spec"]["dependencies"] == [wheel_path]
            assert environment["spec"]["environmentVersion"] == SERVERLESS_ENVIRONMENT_VERSION  # infra/runtime.py
            assert job.inputs["maxConcurrentRuns"] == 1
            assert job.inputs["runAs"]["servicePrincipalName"]
            for task in job.inputs["tasks"]:
                if "pythonWheelTask" in task:
                    assert task["pythonWheelTask"]["parameters"][:4] == ["--backend", "databricks", "--env", env]
                    assert task["environmentKey"] == environment["environmentKey"]
        # The step notebook (the evaluate task, which sets task values) runs in the same serverless environment as
        # the wheel tasks: its Jupyter metadata holds the environment version and the same wheel; no %pip.
        notebook = evaluation.get("Notebook", name="step-notebook").inputs
        assert notebook["format"] == "JUPYTER"
        source = json.loads(base64.b64decode(notebook["contentBase64"]).decode())
        meta = source["metadata"]["application/vnd.databricks.v1+notebook"]["environmentMetadata"]
        assert {"environmentVersion": meta["environment_version"], "dependencies": meta["dependencies"]} == \
            environment["spec"]
        code = "".join(line for cell in source["cells"] for line in cell["source"])
        assert "use_notebook_dbutils(dbutils)" in code and "main(args)" in code
        assert "%pip" not in code and "restartPython" not in code
        (acl,) = evaluation.get("Permissions", name="step-notebook-permissions").inputs["accessControls"]
        assert acl["permissionLevel"] == "CAN_RUN" and acl["servicePrincipalName"]
        evaluate_task = evaluation.get("Job", name="bakehouse_autolog-watcher").inputs["tasks"][2]
        assert evaluate_task["notebookTask"]["notebookPath"] == notebook["path"]
        assert json.loads(evaluate_task["notebookTask"]["baseParameters"]["args"])[:4] == [
            "--backend", "databricks", "--env", env]
        watcher = evaluation.get("Job", name="bakehouse_autolog-watcher").inputs
        assert [t["taskKey"] for t in watcher["tasks"]] == [
            "unpack", "monitor", "evaluate", "retrain_needed", "retrain"]
        assert watcher["schedule"] == {"quartzCronExpression": "0 0 0/6 * * ?", "timezoneId": "America/Detroit",
                                       "pauseStatus": "UNPAUSED"}


def test_grants_give_least_privilege(prod, dev):
    schema_grants = {g["principal"]: set(g["privileges"])
                     for g in prod.get("Grants", name="models-schema-grants").inputs["grants"]}
    assert "MODIFY" not in schema_grants["data-scientists"] and "SELECT" in schema_grants["data-scientists"]
    assert {"MODIFY", "CREATE_MODEL"} <= schema_grants["ml-engineers"]
    assert {"MODIFY", "CREATE_MODEL"} <= schema_grants["7c6b5a49-3827-4165-9483-a2b1c0d9e8f7"]
    model_grants = {g["principal"]: g["privileges"]
                    for g in prod.get("Grants", name="bakehouse_autolog-model-grants").inputs["grants"]}
    assert model_grants["data-scientists"] == ["EXECUTE"]
    assert "MANAGE" in model_grants["7c6b5a49-3827-4165-9483-a2b1c0d9e8f7"]
    assert prod.get("Catalog").inputs["owner"] == "mlops-prod-owners"
    dev_grants = {g["principal"]: set(g["privileges"])
                  for g in dev.get("Grants", name="models-schema-grants").inputs["grants"]}
    assert "MODIFY" in dev_grants["data-scientists"]  # dev: data scientists write


def test_first_deploy_defers_every_endpoint_with_a_warning_and_deploys_the_rest(first_deploy):
    assert kinds(first_deploy)["ModelServing"] == 0
    for kind, n in PER_MODEL.items():
        if kind not in ("ModelServing", "Permissions"):  # the endpoint and its permissions are deferred together
            assert kinds(first_deploy)[kind] >= n * len(MODELS)
    deferred = [w for w in first_deploy.warnings if "deferred" in w]
    assert len(deferred) == len(MODELS)
    assert all("run the training job" in w for w in deferred)
    models = first_deploy.outputs["models"]
    assert all(models[m]["endpoint_name"] is None for m in MODELS)
    assert all(models[m]["watcher_job_id"] for m in MODELS)


def test_only_models_without_a_champion_are_deferred(run):
    evaluation = run("dev", champions={"bakehouse_autolog": 4, "bakehouse_decorators": None})
    endpoints = [r.name for r in evaluation.of_type("ModelServing")]
    assert endpoints == ["bakehouse_autolog-endpoint"]
    assert any("bakehouse_decorators" in w and "no 'champion' alias yet" in w for w in evaluation.warnings)
    assert any("bakehouse_large_order" in w and "does not exist yet" in w for w in evaluation.warnings)


def test_a_lookup_failing_for_another_reason_stops_the_deploy_instead_of_dropping_the_endpoint(run):
    from infra.champion import ChampionLookupError

    with pytest.raises(ChampionLookupError, match=r"PERMISSION_DENIED.*grant the deploying principal"):
        run("prod", champions={"bakehouse_autolog": 2},
            lookup_errors={"bakehouse_decorators": "PERMISSION_DENIED: User does not have EXECUTE"})
    # A 404 whose message reads "does not exist" but whose code is not RESOURCE_DOES_NOT_EXIST is not "absent".
    with pytest.raises(ChampionLookupError, match=r"NOT_FOUND"):
        run("prod", champions={"bakehouse_autolog": 2},
            lookup_errors={"bakehouse_decorators": "NOT_FOUND: Catalog 'mlops_prod' does not exist or not found"})


def test_a_missing_catalog_is_absent_only_where_the_stack_creates_it(run):
    from infra.champion import ChampionLookupError

    missing = {m: "CATALOG_DOES_NOT_EXIST: Catalog 'mlops_dev' does not exist." for m in MODELS}
    first = run("dev", champions={}, lookup_errors=missing)
    assert first.of_type("ModelServing") == [] and len(first.warnings) == len(MODELS)
    reused = {"lakehouse-mlops:catalog": {"name": "mlops_dev", "create": False}}
    with pytest.raises(ChampionLookupError, match="CATALOG_DOES_NOT_EXIST.*bound to this workspace"):
        run("dev", champions={}, lookup_errors=missing, overrides=reused)


def test_endpoint_permissions_are_declared_and_prod_endpoints_protected(dev, prod):
    for evaluation, owners, consumers in ((dev, "mlops-dev-owners", {"data-scientists", "ml-engineers"}),
                                          (prod, "mlops-prod-owners",
                                           {"bakehouse-apps", "3f2e1d0c-9b8a-4765-a432-10fedcba9876"})):
        for model in MODELS:
            endpoint = evaluation.get("ModelServing", name=f"{model}-endpoint")
            assert endpoint.protect is (evaluation.stack == "prod")
            permissions = evaluation.get("Permissions", name=f"{model}-endpoint-permissions")
            assert permissions.parent == endpoint.parent
            assert permissions.inputs["servingEndpointId"] == f"ep-{endpoint.inputs['name']}"
            acl = {(a.get("groupName") or a.get("userName") or a.get("servicePrincipalName")): a["permissionLevel"]
                   for a in permissions.inputs["accessControls"]}
            run_as = evaluation.get("Job", name=f"{model}-watcher").inputs["runAs"]["servicePrincipalName"]
            assert acl == {owners: "CAN_MANAGE", run_as: "CAN_VIEW",
                           **{c: "CAN_QUERY" for c in consumers}}
    (app_sp,) = [a for a in prod.get("Permissions", name="bakehouse_autolog-endpoint-permissions")
                 .inputs["accessControls"] if a.get("servicePrincipalName") == "3f2e1d0c-9b8a-4765-a432-10fedcba9876"]
    assert "groupName" not in app_sp  # a service principal is named by application id, not as a group


def test_prod_protects_catalog_schemas_tables_models_and_dev_does_not(prod, dev):
    protected = ("Catalog", "Schema", "SqlTable", "RegisteredModel", "Volume")
    prod_protected = [r for r in prod.resources if r.type.rsplit(":", 1)[-1] in protected]
    assert len(prod_protected) == 1 + 1 + 1 + 3 * 2 + 3
    assert all(r.protect for r in prod_protected)
    assert not any(r.protect for r in dev.resources)
    assert not any(r.protect for r in prod.of_type(":Job"))  # jobs stay replaceable


def test_prod_differs_in_serving_size_and_threshold_overrides(prod):
    entity = prod.get("ModelServing", name="bakehouse_autolog-endpoint").inputs["config"]["servedEntities"][0]
    assert (entity["workloadSize"], entity["scaleToZeroEnabled"]) == ("Medium", False)
    evaluate_task = prod.get("Job", name="bakehouse_large_order-watcher").inputs["tasks"][2]
    assert json.loads(evaluate_task["notebookTask"]["baseParameters"]["args"])[-4:-2] == [
        "--threshold", "f1_score=min:0.6"]


def test_webhook_secret_creates_a_destination_the_jobs_notify(run):
    evaluation = run("prod", champions={}, overrides={"lakehouse-mlops:alertWebhookUrl": {"secure": "v1:abc"}})
    (destination,) = evaluation.of_type("NotificationDestination")
    for job in evaluation.of_type(":Job"):
        assert job.inputs["webhookNotifications"]["onFailures"] == [{"id": destination.id}]


def test_plaintext_webhook_in_config_is_refused(run):
    from infra.config import StackConfigError

    with pytest.raises(StackConfigError, match="alertWebhookUrl: must be a secret"):
        run("dev", overrides={"lakehouse-mlops:alertWebhookUrl": "https://hooks.example.com/T0/B0/xyz"})


def test_a_warehouse_is_created_when_none_is_configured(run):
    evaluation = run("dev", champions={}, overrides={"lakehouse-mlops:warehouseId": None})
    (warehouse,) = evaluation.of_type("SqlEndpoint")
    assert warehouse.inputs["enableServerlessCompute"] is True
    assert evaluation.get("SqlTable", name="bakehouse_autolog-processed").inputs["warehouseId"] == warehouse.id


def test_stack_outputs_name_endpoints_tables_jobs_and_dashboards(dev):
    outputs = dev.outputs
    assert outputs["catalog"] == "mlops_dev"
    autolog = outputs["models"]["bakehouse_autolog"]
    assert autolog["endpoint_name"] == "bakehouse-autolog"
    assert autolog["endpoint_url"].endswith("/serving-endpoints/bakehouse-autolog/invocations")
    assert autolog["endpoint_url"].startswith("https://adb-1234567890123456.7.azuredatabricks.net")
    assert autolog["endpoint_auth"] == "workspace"
    assert autolog["served_version"] == 3
    assert autolog["payload_table"] == "mlops_dev.bakehouse_ml.bakehouse_autolog_payload"
    assert autolog["processed_table"] == "mlops_dev.bakehouse_ml.bakehouse_autolog_inference"
    assert autolog["baseline_table"] == "mlops_dev.bakehouse_ml.bakehouse_autolog_baseline"
    assert autolog["profile_metrics_table"] == "mlops_dev.bakehouse_ml.bakehouse_autolog_inference_profile_metrics"
    assert autolog["drift_metrics_table"] == "mlops_dev.bakehouse_ml.bakehouse_autolog_inference_drift_metrics"
    jobs = {r.name: r.id for r in dev.of_type(":Job")}
    assert autolog["watcher_job_id"] == jobs["bakehouse_autolog-watcher"]
    assert autolog["training_job_id"] == jobs["bakehouse_autolog-training"]
    assert autolog["batch_job_id"] == jobs["bakehouse_autolog-batch"]
    assert autolog["monitor_dashboard_id"].startswith("dash-")


def test_a_route_optimized_endpoint_outputs_its_own_query_url_and_oauth(prod):
    """Prod sets routeOptimized: such an endpoint is not served at <host>/serving-endpoints/...; its URL is the
    provider's endpoint_url (the mocks answer like the provider) and it takes OAuth tokens only."""
    autolog = prod.outputs["models"]["bakehouse_autolog"]
    assert prod.get("ModelServing", name="bakehouse_autolog-endpoint").inputs["routeOptimized"] is True
    assert autolog["endpoint_url"].startswith("https://ep-")
    assert re.fullmatch(r"https://ep-\d+\.0\.serving\.azuredatabricks\.net/\d+/serving-endpoints/bakehouse-autolog/"
                        r"invocations", autolog["endpoint_url"])
    assert autolog["endpoint_auth"] == "oauth"


def _synthetic_specs(n: int):
    base = resolve_spec("bakehouse_autolog").model_dump()
    return [resolve_spec("bakehouse_autolog").model_validate({**base, "name": f"synthetic_{i:03d}"})
            for i in range(n)]


def test_resource_count_grows_linearly_with_the_number_of_model_specs(run):
    counts = {}
    for n in (1, 2, 4):
        specs = _synthetic_specs(n)
        names = [s.name for s in specs]
        evaluation = run("dev", specs=specs, overrides={"lakehouse-mlops:models": names},
                         champions={name: 1 for name in names})
        counts[n] = len(evaluation.resources)
    per_model = counts[2] - counts[1]
    assert per_model == sum(PER_MODEL.values()) + 6  # + ModelDeployment and its five components
    assert counts[4] == counts[1] + 3 * per_model


def test_program_emits_no_deprecation_warnings(dev, prod, first_deploy):
    for evaluation in (dev, prod, first_deploy):
        assert evaluation.deprecations == []


def test_deprecation_detector_can_fail():
    """The shape the program avoids does warn, so the test above is not vacuous."""
    import pulumi_databricks as databricks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        databricks.ModelServingConfigArgs(served_models=[databricks.ModelServingConfigServedModelArgs(
            model_name="m", model_version="1", workload_size="Small", scale_to_zero_enabled=True)])
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_missing_wheel_is_a_clear_error(tmp_path, run):
    with pytest.raises(WheelNotFoundError, match=r"run `uv build --wheel`"):
        locate_wheel(None, root=tmp_path)
    with pytest.raises(WheelNotFoundError, match=r"run `uv build --wheel`"):
        run("dev", wheel=tmp_path / "dist" / "lakehouse_mlops-9.9.9-py3-none-any.whl")


def test_a_new_build_gets_a_new_content_addressed_path(tmp_path, run):
    first = tmp_path / "a" / "lakehouse_mlops-0.1.0-py3-none-any.whl"
    second = tmp_path / "b" / "lakehouse_mlops-0.1.0-py3-none-any.whl"
    for path, content in ((first, b"build one"), (second, b"build two")):
        path.parent.mkdir()
        path.write_bytes(content)
    paths = [run("dev", champions={}, wheel=w).get("File", name="wheel").inputs["path"] for w in (first, second)]
    assert paths[0] != paths[1]
    assert all(p.endswith("/lakehouse_mlops-0.1.0-py3-none-any.whl") for p in paths)


@pulumi.runtime.test
def test_program_outputs_under_runtime_test(fake_wheel):
    """The program run by ``@pulumi.runtime.test`` itself, asserting on its live Outputs."""
    harness = prepare("prod", wheel=fake_wheel, champions={"bakehouse_autolog": 9})
    namespace = harness.run_program()
    deployment = namespace["models"]["bakehouse_autolog"]

    def check(args):
        config, protected_catalog = args
        assert config.served_entities[0].entity_version == "9"
        assert protected_catalog == "mlops_prod"
        assert [r.protect for r in harness.resources if r.type.endswith(":Catalog")] == [True]

    return resolved(deployment.serving.endpoint.config, namespace["platform"].catalog_name).apply(check)


def test_inputs_that_cannot_change_in_place_replace_their_resource_deliberately(prod):
    """Databricks refuses in-place changes to a monitor's table/assets/warehouse and to where an endpoint's
    inference table lands: those inputs replace the resource, the old one first (names are unique)."""
    from infra.components.monitor import MONITOR_IMMUTABLE
    from infra.components.serving import INFERENCE_TABLE_IMMUTABLE

    monitor = prod.get("QualityMonitor", name="bakehouse_autolog-monitor")
    assert set(monitor.replace_on_changes) == set(MONITOR_IMMUTABLE) == {"tableName", "assetsDir", "warehouseId"}
    assert monitor.delete_before_replace
    endpoint = prod.get("ModelServing", name="bakehouse_autolog-endpoint")
    assert set(endpoint.replace_on_changes) == set(INFERENCE_TABLE_IMMUTABLE)
    for path in INFERENCE_TABLE_IMMUTABLE:  # each path names a real input (a typo would silently match nothing)
        value = endpoint.inputs
        for key in path.split("."):
            value = value[key]
        assert value
    for path in MONITOR_IMMUTABLE:
        assert monitor.inputs[path]
    assert endpoint.delete_before_replace
    # Tables change in place: no ignore_changes on the output-only effective_properties (it would have no effect),
    # and column mapping on, so that a column removed from a spec can be dropped (ALTER TABLE ... DROP COLUMN).
    for table in prod.of_type("SqlTable"):
        assert table.ignore_changes == () and not table.replace_on_changes
        assert table.inputs["properties"]["delta.columnMapping.mode"] == "name"
    # Nothing else is replaced on change: jobs, tables and models update in place.
    others = [r for r in prod.resources if r.replace_on_changes and r not in (monitor, endpoint)
              and r.type.rsplit(":", 1)[-1] not in ("QualityMonitor", "ModelServing")]
    assert others == []


def test_cross_environment_readers_are_granted_by_the_stack_that_owns_the_models(dev, prod):
    """The prod identities that read the dev champion get exactly USE CATALOG, USE SCHEMA and EXECUTE, declared in
    dev's authoritative grants (a grant made by hand would be revoked by the next DeployDev)."""
    readers = ["5e4d3c2b-1a09-4f8e-9d7c-6b5a49382716", "6f5e4d3c-2b1a-4098-8e7d-5c4b3a291807"]

    def granted(resource):
        return {g["principal"]: sorted(g["privileges"]) for g in resource.inputs["grants"]}

    catalog = granted(dev.get("Grants", name="catalog-grants"))
    schema = granted(dev.get("Grants", name="models-schema-grants"))
    for reader in readers:
        assert catalog[reader] == ["USE_CATALOG"] and schema[reader] == ["USE_SCHEMA"]
        for model in MODELS:
            assert granted(dev.get("Grants", name=f"{model}-model-grants"))[reader] == ["EXECUTE"]
    # prod grants nothing to its own deploy identity (it acts through prod's owner group); prod's preview identity,
    # also a reader of dev, reads prod's champions as prod's preview identity (the test below)
    assert not any(readers[0] in str(r.inputs) for r in prod.of_type("Grants"))


@pytest.mark.parametrize("stack, preview", [("dev", "3c2b1a09-8f7e-4d6c-9b5a-483726150f4e"),
                                            ("prod", "6f5e4d3c-2b1a-4098-8e7d-5c4b3a291807")])
def test_each_stacks_preview_identity_may_read_its_champions_and_nothing_else(dev, prod, stack, preview):
    """`pulumi preview` runs the program, which reads each model's champion alias (`registered_models.get`, needs
    EXECUTE with USE CATALOG and USE SCHEMA): the stack's own preview identity gets exactly that, declared in its
    authoritative grants; no SELECT, no write, nothing on tables or the volume."""
    evaluation = {"dev": dev, "prod": prod}[stack]

    def granted(resource):
        return {g["principal"]: sorted(g["privileges"]) for g in resource.inputs["grants"]}

    assert granted(evaluation.get("Grants", name="catalog-grants"))[preview] == ["USE_CATALOG"]
    assert granted(evaluation.get("Grants", name="models-schema-grants"))[preview] == ["USE_SCHEMA"]
    for model in MODELS:
        assert granted(evaluation.get("Grants", name=f"{model}-model-grants"))[preview] == ["EXECUTE"]
    everywhere = [g for r in evaluation.of_type("Grants") for g in r.inputs["grants"] if g["principal"] == preview]
    assert len(everywhere) == 2 + len(MODELS)
