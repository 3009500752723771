"""``mlops doctor`` against a fake workspace on 127.0.0.1: the real databricks-sdk ``WorkspaceClient`` (built by
the command from ``--host`` and the SDK's own auth resolution) sends the requests, the fake answers in the
documented response shapes and records every request, so the tests see that the doctor only reads."""

from __future__ import annotations

import copy
import re

import pytest
from typer.testing import CliRunner

from tests.fakes import fake_databricks_auth, json_server
from workloads.cli import app

ACCOUNT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
METASTORE_ID = "11111111-2222-4333-8444-555555555555"
DEV_SP = "0f1e2d3c-4b5a-4697-8887-a9b8c7d6e5f4"  # Pulumi.dev.yaml runAs.servicePrincipal
PROD_SP = "7c6b5a49-3827-4165-9483-a2b1c0d9e8f7"  # Pulumi.prod.yaml
DEV_WAREHOUSE = "5a6b7c8d9e0f1a2b"
PROD_WAREHOUSE = "9f8e7d6c5b4a3f2e"
MODELS = ["bakehouse_autolog", "bakehouse_decorators", "bakehouse_large_order"]
DEV_MODELS = [f"mlops_dev.bakehouse_ml.{m}_model" for m in MODELS]
ME = "deployer@bakehouse.example.com"

# Answers in the shapes Databricks documents (each is held to the SDK's dataclass in a test below).
ANSWERS = {
    "me": {"id": "4242", "userName": ME, "displayName": "Deployer", "active": True,
           "groups": [{"display": "mlops-dev-owners", "value": "77", "type": "direct"}]},
    "metastore": {"workspace_id": 1234567890123456, "metastore_id": METASTORE_ID, "default_catalog_name": "main"},
    "metastore_summary": {"metastore_id": METASTORE_ID, "name": "westeurope", "owner": "metastore-admins"},
    "warehouse": {"id": DEV_WAREHOUSE, "name": "mlops-dev", "state": "RUNNING", "cluster_size": "2X-Small",
                  "enable_serverless_compute": True, "warehouse_type": "PRO"},
    "rule_set": {"name": "", "etag": "RENUAAABhSweA4NvVmmUYdiU717H3Tgy0UJdor3gE4a+mq/oj9NjAf8ZsQ==",
                 "grant_rules": [{"role": "roles/servicePrincipal.manager", "principals": ["users/admin@bakehouse.example.com"]},
                                 {"role": "roles/servicePrincipal.user", "principals": ["groups/mlops-dev-owners"]}]},
    "endpoints": {"endpoints": [{"name": "bakehouse-autolog", "creator": ME, "state": {"ready": "READY",
                                                                                        "config_update": "NOT_UPDATING"}}]},
}


class FakeWorkspace:
    """A workspace's read APIs over scripted state, and a log of every request."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.me: tuple[int, dict] = (200, ANSWERS["me"])
        self.metastore: tuple[int, dict] = (200, ANSWERS["metastore"])
        self.catalogs: dict[str, dict] = {}  # name -> CatalogInfo
        self.effective: dict[tuple[str, str], list[dict]] = {  # (securable type, full name) -> assignments
            ("METASTORE", METASTORE_ID): [
                {"principal": "mlops-dev-owners", "privileges": [{"privilege": "CREATE_CATALOG"}]},
                {"principal": "data-scientists", "privileges": [{"privilege": "USE_CATALOG"}]}]}
        self.warehouses: dict[str, dict] = {DEV_WAREHOUSE: ANSWERS["warehouse"],
                                            PROD_WAREHOUSE: {**ANSWERS["warehouse"], "id": PROD_WAREHOUSE,
                                                             "name": "mlops-prod"}}
        self.service_principals: list[dict] = [
            {"id": "555", "applicationId": DEV_SP, "displayName": "mlops-dev-jobs", "active": True,
             "groups": [{"display": "mlops-dev-owners", "value": "77"}]},
            {"id": "556", "applicationId": PROD_SP, "displayName": "mlops-prod-jobs", "active": True,
             "groups": [{"display": "mlops-prod-owners", "value": "78"}]}]
        self.metastore_summary: dict = {**ANSWERS["metastore_summary"],
                                        "storage_root": "abfss://uc@stmetastore.dfs.core.windows.net/root"}
        self.external_locations: list[dict] = []
        self.rule_sets: dict[str, dict] = {
            f"accounts/{ACCOUNT_ID}/servicePrincipals/{sp}/ruleSets/default": ANSWERS["rule_set"]
            for sp in (DEV_SP, PROD_SP)}
        self.serving: tuple[int, dict] = (200, ANSWERS["endpoints"])
        self.models: dict[str, tuple[int, dict]] = {}
        self.publishes_account_id = True  # /.well-known/databricks-config answers with the account id

    def handle(self, method, path, query, body, headers):
        self.requests.append((method, path, {k: v[0] for k, v in query.items()}))
        missing = (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"fake has no {method} {path}"})
        if method != "GET":
            return 405, {"error_code": "BAD_REQUEST", "message": "the doctor must only read"}
        if path == "/.well-known/databricks-config":  # what databricks-sdk asks when a client is created
            if not self.publishes_account_id:
                return 404, {"error_code": "NOT_FOUND", "message": "Not Found"}
            return 200, {"oidc_endpoint": f"{self.url}/oidc", "account_id": ACCOUNT_ID,
                         "workspace_id": "1234567890123456"}
        if path == "/api/2.0/preview/scim/v2/Me":
            return self.me
        if path == "/api/2.1/unity-catalog/current-metastore-assignment":
            return self.metastore
        if path == "/api/2.1/unity-catalog/metastore_summary":
            return 200, self.metastore_summary
        if path == "/api/2.1/unity-catalog/external-locations":
            return 200, {"external_locations": self.external_locations}
        if path.startswith("/api/2.1/unity-catalog/catalogs/"):
            name = path.rsplit("/", 1)[1]
            if name not in self.catalogs:
                return 404, {"error_code": "CATALOG_DOES_NOT_EXIST", "message": f"Catalog '{name}' does not exist."}
            return 200, self.catalogs[name]
        if path.startswith("/api/2.1/unity-catalog/effective-permissions/"):
            securable_type, full_name = path.split("/")[-2:]
            return 200, {"privilege_assignments": self.effective.get((securable_type, full_name), [])}
        if path.startswith("/api/2.0/sql/warehouses/"):
            warehouse = self.warehouses.get(path.rsplit("/", 1)[1])
            if warehouse is None:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                             "message": f"Unable to find SQL warehouse {path.rsplit('/', 1)[1]}."}
            return 200, warehouse
        if path == "/api/2.0/preview/scim/v2/ServicePrincipals":
            wanted = re.fullmatch(r'applicationId eq "([0-9a-f-]+)"', query["filter"][0]).group(1)
            found = [sp for sp in self.service_principals if sp["applicationId"] == wanted]
            start = int(query.get("startIndex", ["1"])[0])
            page = found[start - 1:]
            return 200, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                         "totalResults": len(found), "startIndex": start, "itemsPerPage": len(page),
                         "Resources": page}
        if path == "/api/2.0/preview/accounts/access-control/rule-sets":
            name = query["name"][0]
            if name not in self.rule_sets:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Rule set {name} not found."}
            return 200, {**self.rule_sets[name], "name": name}
        if path == "/api/2.0/serving-endpoints":
            return self.serving
        if path.startswith("/api/2.1/unity-catalog/models/"):
            return self.models.get(path.rsplit("/", 1)[1], (404, {
                "error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Registered model does not exist."}))
        return missing

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]


@pytest.fixture
def workspace(monkeypatch):
    fake = FakeWorkspace()
    fake_databricks_auth(monkeypatch)  # the user's own auth, as databricks-sdk finds it; the host from --host
    with json_server(lambda *request: fake.handle(*request)) as url:  # a test may swap fake.handle
        fake.url = url
        yield fake


def doctor(workspace, stack="dev", *extra):
    result = CliRunner().invoke(app, ["doctor", "--stack", stack, "--host", workspace.url, *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def line(result, check: str) -> str:
    """The output line of one check, whitespace collapsed."""
    lines = [" ".join(row.replace("│", " ").split()) for row in result.output.splitlines()]
    (found,) = [row for row in lines if row.startswith(check + " ")]
    return found


def lines_with(result, status: str) -> list[str]:
    lines = [" ".join(row.replace("│", " ").split()) for row in result.output.splitlines()]
    return [row for row in lines if f" {status} " in f" {row} "]


# --- a good workspace --------------------------------------------------------------------------------------
def test_a_good_dev_workspace_passes_every_check_with_reads_only(workspace):
    result = doctor(workspace, "dev")

    assert result.exit_code == 0, result.output
    assert f"doctor: stack dev on {workspace.url} as {ME} (read-only)" in result.output
    assert line(result, "identity") == f"identity pass user {ME} (groups: mlops-dev-owners)"
    assert line(result, "metastore") == f"metastore pass metastore {METASTORE_ID}"
    assert line(result, "catalog") == ("catalog pass catalog mlops_dev does not exist yet; you hold CREATE CATALOG "
                                       "on the metastore: the deploy creates it")
    assert line(result, "warehouse") == f"warehouse pass SQL warehouse {DEV_WAREHOUSE} (mlops-dev, RUNNING)"
    assert line(result, "run-as") == (f"run-as pass service principal mlops-dev-jobs ({DEV_SP}) is active; you may use "
                                      "it (via groups/mlops-dev-owners)")
    assert line(result, "model serving") == "model serving pass Model Serving answers (1 endpoint)"
    # Serverless jobs: Databricks has no read-only API for it, and the line says so.
    assert line(result, "serverless jobs").startswith(
        "serverless jobs warn not checked: Databricks has no read-only API for it; Unity Catalog (its requirement) "
        "is enabled")
    assert "FAIL" not in result.output and "dev model" not in result.output  # dev is promoted from nothing
    assert line(result, "storage root") == ("storage root pass the catalog's tables go to the metastore's root "
                                            "abfss://uc@stmetastore.dfs.core.windows.net/root")
    assert line(result, "owner group") == f"owner group pass you and the run-as principal {DEV_SP} are in mlops-dev-owners"
    assert result.output.strip().splitlines()[-1] == "8 pass, 1 warn"
    # Read-only: every request a GET, exactly these, in this order.
    assert {method for method, _, _ in workspace.requests} == {"GET"}
    assert workspace.requests == [
        ("GET", "/.well-known/databricks-config", {}),
        ("GET", "/api/2.0/preview/scim/v2/Me", {}),
        ("GET", "/api/2.1/unity-catalog/current-metastore-assignment", {}),
        ("GET", "/api/2.1/unity-catalog/catalogs/mlops_dev", {}),
        ("GET", f"/api/2.1/unity-catalog/effective-permissions/METASTORE/{METASTORE_ID}", {"max_results": "0"}),
        ("GET", "/api/2.1/unity-catalog/metastore_summary", {}),
        ("GET", "/api/2.0/preview/scim/v2/ServicePrincipals",
         {"attributes": "groups", "filter": f'applicationId eq "{DEV_SP}"', "startIndex": "1", "count": "10000"}),
        ("GET", f"/api/2.0/sql/warehouses/{DEV_WAREHOUSE}", {}),
        ("GET", "/api/2.0/preview/scim/v2/ServicePrincipals",
         {"filter": f'applicationId eq "{DEV_SP}"', "startIndex": "1", "count": "10000"}),
        ("GET", "/api/2.0/preview/accounts/access-control/rule-sets",
         # (plus the documented empty `etag=`, "no freshness requirement", which parse_qs leaves out)
         {"name": f"accounts/{ACCOUNT_ID}/servicePrincipals/{DEV_SP}/ruleSets/default"}),
        ("GET", "/api/2.0/serving-endpoints", {}),
    ]


def as_prod_deployer(workspace) -> None:
    """The caller is prod's deploy identity: in prod's owner group (and not in dev's)."""
    workspace.me = (200, {**ANSWERS["me"], "groups": [{"display": "mlops-prod-owners", "value": "78",
                                                       "type": "direct"}]})
    workspace.rule_sets[f"accounts/{ACCOUNT_ID}/servicePrincipals/{PROD_SP}/ruleSets/default"] = {
        **ANSWERS["rule_set"], "grant_rules": [{"role": "roles/servicePrincipal.user",
                                                "principals": ["groups/mlops-prod-owners"]}]}


def test_a_good_prod_workspace_reads_the_dev_models_promote_copies(workspace):
    as_prod_deployer(workspace)
    workspace.catalogs["mlops_prod"] = {"name": "mlops_prod", "owner": "mlops-prod-owners",
                                        "catalog_type": "MANAGED_CATALOG", "metastore_id": METASTORE_ID}
    for name in DEV_MODELS:
        catalog, schema, model = name.split(".")
        workspace.models[name] = (200, {"full_name": name, "catalog_name": catalog, "schema_name": schema,
                                        "name": model, "owner": "mlops-dev-owners"})

    result = doctor(workspace, "prod")

    assert result.exit_code == 0, result.output
    # The catalog exists and is owned by a group of the caller; create: true cannot tell whether this stack
    # created it, so it warns with the fix for a first deploy.
    assert line(result, "catalog") == (
        "catalog warn catalog mlops_prod exists, owned by mlops-prod-owners (you) if this stack did not create it, set "
        "catalog.create: false (reuse it) or `pulumi import databricks:index/catalog:Catalog catalog mlops_prod`")
    assert lines_with(result, "pass")[-3:] == [f"dev model pass {name} is readable" for name in DEV_MODELS]
    assert [p for p in workspace.paths() if "/models/" in p] == [f"/api/2.1/unity-catalog/models/{n}"
                                                                 for n in DEV_MODELS]
    assert {method for method, _, _ in workspace.requests} == {"GET"}


# --- bad workspaces: each fails its line with the fix, and the command exits 1 ------------------------------
def test_no_metastore_fails_and_the_checks_that_need_one_say_why(workspace):
    workspace.metastore = (404, {"error_code": "METASTORE_DOES_NOT_EXIST",
                                 "message": "No metastore assigned for the current workspace."})

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "metastore") == (
        "metastore FAIL no Unity Catalog metastore is assigned: No metastore assigned for the current workspace. "
        "an account admin assigns a Unity Catalog metastore to this workspace (account console -> Catalog -> the "
        "region's metastore -> Workspaces -> Assign)")
    assert line(result, "catalog") == "catalog skip catalog mlops_dev: not checked without a metastore"
    assert line(result, "serverless jobs").startswith(
        "serverless jobs FAIL serverless compute needs Unity Catalog, and there is no metastore assign a metastore")
    assert not [p for p in workspace.paths() if "/catalogs/" in p or "effective-permissions" in p]


def test_a_missing_catalog_without_create_catalog_fails_with_the_grant_to_ask_for(workspace):
    workspace.effective[("METASTORE", METASTORE_ID)] = [
        {"principal": "data-scientists", "privileges": [{"privilege": "CREATE_CATALOG"}]}]  # not a group of ours

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "catalog") == (
        f"catalog FAIL catalog mlops_dev does not exist and you cannot create it (no CREATE CATALOG on metastore "
        f"{METASTORE_ID}) a metastore admin runs: GRANT CREATE CATALOG ON METASTORE TO `{ME}`; or creates mlops_dev "
        "for you and you set catalog.create: false")
    # the metastore admin (its owner) holds CREATE CATALOG without a grant: asked, and not us
    assert "/api/2.1/unity-catalog/metastore_summary" in workspace.paths()
    assert result.output.strip().splitlines()[-1] == "7 pass, 1 warn, 1 fail"


def test_the_metastore_admin_may_create_the_catalog_without_a_grant(workspace):
    workspace.effective[("METASTORE", METASTORE_ID)] = []
    workspace.me = (200, {**ANSWERS["me"], "groups": [{"display": "metastore-admins", "value": "1"},
                                                      {"display": "mlops-dev-owners", "value": "77"}]})
    workspace.rule_sets = {k: {**v, "grant_rules": [{"role": "roles/servicePrincipal.user",
                                                     "principals": [f"users/{ME}"]}]}
                           for k, v in workspace.rule_sets.items()}

    result = doctor(workspace, "dev")

    assert result.exit_code == 0, result.output
    assert line(result, "catalog") == ("catalog pass catalog mlops_dev does not exist yet; you are the metastore admin "
                                       "(metastore-admins): the deploy creates it")
    assert line(result, "run-as").endswith(f"you may use it (via users/{ME})")


def test_a_present_catalog_without_the_deploys_privileges_fails_naming_them(workspace):
    workspace.catalogs["mlops_dev"] = {"name": "mlops_dev", "owner": "platform-team", "catalog_type": "MANAGED_CATALOG"}
    workspace.effective[("CATALOG", "mlops_dev")] = [
        {"principal": "mlops-dev-owners", "privileges": [
            {"privilege": "ALL_PRIVILEGES", "inherited_from_type": "CATALOG", "inherited_from_name": "mlops_dev"}]}]

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    # ALL PRIVILEGES covers USE CATALOG and CREATE SCHEMA, not MANAGE (which the stack's catalog grants need)
    assert line(result, "catalog") == (
        f"catalog FAIL catalog mlops_dev exists (owner platform-team); you lack MANAGE its owner runs: GRANT MANAGE ON "
        f"CATALOG mlops_dev TO `{ME}` (or makes you, or a group of yours, the owner)")


def test_a_missing_warehouse_fails_with_where_to_find_the_id(workspace):
    del workspace.warehouses[DEV_WAREHOUSE]

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "warehouse") == (
        f"warehouse FAIL SQL warehouse {DEV_WAREHOUSE} does not exist set lakehouse-mlops:warehouseId to an existing "
        "warehouse (SQL Warehouses -> the warehouse -> Overview: its id), or remove the key and the deploy creates one")


def test_a_missing_run_as_service_principal_fails(workspace):
    workspace.service_principals = [sp for sp in workspace.service_principals if sp["applicationId"] != DEV_SP]

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "run-as") == (
        f"run-as FAIL service principal {DEV_SP} is not in this workspace add it (account console -> User management "
        "-> Service principals -> add by application id; then assign it to this workspace), or fix "
        "lakehouse-mlops:runAs.servicePrincipal")
    assert not [p for p in workspace.paths() if "rule-sets" in p]


def test_a_run_as_principal_you_may_not_use_or_that_is_deactivated_fails(workspace):
    workspace.rule_sets = {k: {**v, "grant_rules": [{"role": "roles/servicePrincipal.manager",
                                                     "principals": [f"users/{ME}"]}]}  # Manager is not User
                           for k, v in workspace.rule_sets.items()}
    result = doctor(workspace, "dev")
    assert result.exit_code == 1
    assert line(result, "run-as") == (
        f"run-as FAIL service principal mlops-dev-jobs ({DEV_SP}) is active, but you cannot run jobs as it (no Service "
        f"Principal User role) a Service Principal Manager of mlops-dev-jobs ({DEV_SP}) (or an account admin) grants "
        f"{ME} the Service Principal: User role (Settings -> Identity and access -> Service principals -> the "
        "principal -> Permissions)")

    workspace.service_principals[0] = {**workspace.service_principals[0], "active": False}
    result = doctor(workspace, "dev")
    assert result.exit_code == 1
    assert line(result, "run-as") == (
        f"run-as FAIL service principal mlops-dev-jobs ({DEV_SP}) is deactivated an admin activates it (Settings -> "
        "Identity and access -> Service principals)")


def test_without_an_account_id_the_role_is_a_warn_saying_it_was_not_checked(workspace):
    workspace.publishes_account_id = False

    result = doctor(workspace, "dev")

    assert result.exit_code == 0, result.output
    assert line(result, "run-as").startswith(
        f"run-as warn service principal mlops-dev-jobs ({DEV_SP}) is active; whether you hold its User role was not "
        "checked (no account id: the workspace did not publish it and DATABRICKS_ACCOUNT_ID is unset) set "
        "DATABRICKS_ACCOUNT_ID and rerun")
    assert not [p for p in workspace.paths() if "rule-sets" in p]


def test_an_answer_a_check_did_not_expect_fails_that_line_and_the_others_still_run(workspace):
    original = workspace.handle

    def broken_grants(method, path, query, body, headers):
        if "effective-permissions" in path:
            return 403, {"error_code": "PERMISSION_DENIED", "message": "User cannot read grants on metastore."}
        return original(method, path, query, body, headers)

    workspace.handle = broken_grants
    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "catalog") == (
        "catalog FAIL could not be checked: PermissionDenied: User cannot read grants on metastore rerun with --debug "
        "for the full error; fix what it names")
    assert line(result, "warehouse").startswith("warehouse pass")
    assert line(result, "model serving").startswith("model serving pass")


def test_model_serving_disabled_fails(workspace):
    workspace.serving = (400, {"error_code": "FEATURE_DISABLED",
                               "message": "Model serving is not enabled for your shard."})

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "model serving") == (
        "model serving FAIL Model Serving is not enabled here: Model serving is not enabled for your shard. use a "
        "Premium workspace in a region with Model Serving, or ask Databricks to enable it")


def test_prod_fails_on_a_dev_model_it_may_not_read_and_warns_on_untrained_ones(workspace):
    autolog, decorators, large_order = DEV_MODELS
    workspace.models[autolog] = (403, {"error_code": "PERMISSION_DENIED",
                                       "message": "User does not have USE CATALOG on Catalog 'mlops_dev'."})
    workspace.models[large_order] = (200, {"full_name": large_order, "name": "bakehouse_large_order_model"})

    result = doctor(workspace, "prod")

    assert result.exit_code == 1
    rows = [row for row in lines_with(result, "FAIL") + lines_with(result, "warn") + lines_with(result, "pass")
            if row.startswith("dev model")]
    assert rows == [
        (f"dev model FAIL {autolog}: permission denied: User does not have USE CATALOG on Catalog 'mlops_dev' grant "
         f"{ME} USE CATALOG on mlops_dev, USE SCHEMA on mlops_dev.bakehouse_ml and EXECUTE on {autolog}; if mlops_dev "
         "is bound to its own workspace, add a read-only binding for this one"),
        (f"dev model warn {decorators} does not exist: not trained yet train it in dev first; `mlops promote` copies "
         "its champion"),
        f"dev model pass {large_order} is readable"]
    # the config dump databricks-sdk appends to 401/403 messages (after dropping their final '.') stays out
    assert "Config:" not in result.output


def test_unauthenticated_fails_identity_with_the_auth_fix_and_asks_nothing_else(workspace):
    workspace.me = (401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."})

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "identity") == (
        "identity FAIL the workspace did not say who you are: Invalid access token (databricks-sdk auth: pat) "
        f"authenticate to {workspace.url}: `az login` (the stacks' authType azure-cli), or `databricks auth login "
        f"--host {workspace.url}`, or DATABRICKS_TOKEN / DATABRICKS_CLIENT_ID+DATABRICKS_CLIENT_SECRET")
    assert workspace.paths() == ["/.well-known/databricks-config", "/api/2.0/preview/scim/v2/Me"]
    assert result.output.strip().splitlines()[-1] == "1 fail"


def test_the_source_stack_cannot_be_the_stack_itself(workspace):
    result = CliRunner().invoke(app, ["doctor", "--stack", "prod", "--from-stack", "prod", "--host", workspace.url])
    assert result.exit_code == 1
    assert "is the stack itself" in str(result.exception)
    assert workspace.requests == []


# --- the fake's answers are the documented shapes -------------------------------------------------------------
@pytest.mark.parametrize("answer, cls", [
    ("me", "iam.User"), ("metastore", "catalog.MetastoreAssignment"), ("metastore_summary", "catalog.GetMetastoreSummaryResponse"),
    ("warehouse", "sql.GetWarehouseResponse"), ("rule_set", "iam.RuleSetResponse"),
    ("endpoints", "serving.ListEndpointsResponse")])
def test_every_answer_round_trips_through_the_sdk_dataclass(answer, cls):
    """``from_dict`` drops keys it does not know; a round trip that loses nothing shows every key is a documented
    field in the documented form."""
    import importlib

    module, name = cls.split(".")
    dataclass = getattr(importlib.import_module(f"databricks.sdk.service.{module}"), name)
    assert dataclass.from_dict(copy.deepcopy(ANSWERS[answer])).as_dict() == ANSWERS[answer]


def test_the_scim_and_unity_catalog_answers_round_trip_too():
    from databricks.sdk.service import catalog, iam

    fake = FakeWorkspace()
    for sp in fake.service_principals:
        assert iam.ServicePrincipal.from_dict(sp).as_dict() == sp
    for assignments in fake.effective.values():
        page = {"privilege_assignments": assignments}
        assert catalog.EffectivePermissionsList.from_dict(page).as_dict() == page
    info = {"name": "mlops_prod", "owner": "mlops-dev-owners", "catalog_type": "MANAGED_CATALOG",
            "metastore_id": METASTORE_ID}
    assert catalog.CatalogInfo.from_dict(info).as_dict() == info


def test_no_databricks_auth_at_all_fails_identity_with_the_auth_fix(workspace, monkeypatch):
    monkeypatch.delenv("DATABRICKS_TOKEN")
    monkeypatch.setenv("PATH", "/nonexistent")  # no `az` or `databricks` CLI to borrow a login from

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "identity").startswith(f"identity FAIL no Databricks auth for {workspace.url}: ")
    assert line(result, "identity").endswith(
        f"authenticate to {workspace.url}: `az login` (the stacks' authType azure-cli), or `databricks auth login "
        f"--host {workspace.url}`, or DATABRICKS_TOKEN / DATABRICKS_CLIENT_ID+DATABRICKS_CLIENT_SECRET")
    assert "/api/2.0/preview/scim/v2/Me" not in workspace.paths()


# --- the identity model and the storage root (issue 19) -----------------------------------------------------
def test_a_deployer_outside_the_owner_group_fails_with_the_membership_to_ask_for(workspace):
    workspace.me = (200, {**ANSWERS["me"], "groups": [{"display": "data-scientists", "value": "78"}]})
    result = doctor(workspace, "dev")
    assert result.exit_code == 1
    assert line(result, "owner group").startswith(
        f"owner group FAIL you ({ME}) are not in mlops-dev-owners, which owns what the stack creates")
    assert f"adds {ME} to the group mlops-dev-owners" in " ".join(result.output.split())


def test_a_run_as_principal_outside_the_owner_group_fails(workspace):
    workspace.service_principals[0]["groups"] = []
    result = doctor(workspace, "dev")
    assert result.exit_code == 1
    assert line(result, "owner group").startswith(
        f"owner group FAIL you are in mlops-dev-owners; the run-as principal {DEV_SP} is not (groups: none)")


def test_automatic_unity_catalog_without_a_storage_root_fails_until_the_stack_sets_one(workspace, tmp_path,
                                                                                         monkeypatch):
    workspace.metastore_summary = dict(ANSWERS["metastore_summary"])  # no storage_root
    result = doctor(workspace, "dev")
    assert result.exit_code == 1
    assert line(result, "storage root").startswith("storage root FAIL the metastore has no storage root (automatic "
                                                   "Unity Catalog) and catalog.storageRoot is not set")


def _with_storage_root(root: str):
    from infra.config import stack_config_from_file

    config = stack_config_from_file("dev")
    return config.model_copy(update={"catalog": config.catalog.model_copy(update={"storage_root": root})})


@pytest.mark.parametrize("privileges,owner,expected", [
    (["CREATE_MANAGED_STORAGE"], "storage-admins", "pass"),
    ([], "storage-admins", "fail"),
    ([], "mlops-dev-owners", "pass"),   # the location's owner (a group of the caller)
])
def test_a_storage_root_must_lie_in_an_external_location_you_may_create_managed_storage_in(
        workspace, privileges, owner, expected):
    from workloads.doctor import check_storage_root, workspace_client

    root = "abfss://mlops@stlakehouse.dfs.core.windows.net/dev"
    workspace.metastore_summary = dict(ANSWERS["metastore_summary"])
    workspace.external_locations = [
        {"name": "other", "url": "abfss://other@stlakehouse.dfs.core.windows.net/", "owner": "x"},
        {"name": "mlops", "url": "abfss://mlops@stlakehouse.dfs.core.windows.net/", "owner": owner}]
    workspace.effective[("EXTERNAL_LOCATION", "mlops")] = [
        {"principal": "mlops-dev-owners", "privileges": [{"privilege": p} for p in privileges]}]
    from workloads.doctor import Caller

    caller = Caller(user_name=ME, groups=("mlops-dev-owners",))
    result = check_storage_root(workspace_client(workspace.url), _with_storage_root(root), caller, METASTORE_ID)
    assert result.status == expected, result
    assert "external location mlops" in result.detail
    assert {method for method, _, _ in workspace.requests} == {"GET"}
    workspace.external_locations = workspace.external_locations[:1]
    missing = check_storage_root(workspace_client(workspace.url), _with_storage_root(root), caller, METASTORE_ID)
    assert missing.status == "fail" and "no external location covers" in missing.detail


def test_a_storage_root_that_is_not_an_adls_path_is_one_error_naming_the_key():
    from infra.config import StackConfigError
    from infra.offline import read_stack_config

    raw = {k.split(":", 1)[1]: v for k, v in read_stack_config("dev").items() if k.startswith("lakehouse-mlops:")}
    raw["catalog"] = {**raw["catalog"], "storageRoot": "s3://bucket/path"}
    from infra.config import parse_stack_config

    with pytest.raises(StackConfigError, match=r"lakehouse-mlops:catalog.storageRoot: 's3://bucket/path' is not an "
                                               r"ADLS Gen2 path"):
        parse_stack_config("dev", raw)
