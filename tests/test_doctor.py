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
DEV_PREVIEW = "3c2b1a09-8f7e-4d6c-9b5a-483726150f4e"  # Pulumi.dev.yaml grants.previewIdentities
PROD_DEPLOY = "5e4d3c2b-1a09-4f8e-9d7c-6b5a49382716"  # Pulumi.dev.yaml grants.crossEnvironmentReaders
PROD_PREVIEW = "6f5e4d3c-2b1a-4098-8e7d-5c4b3a291807"  # the same, and Pulumi.prod.yaml grants.previewIdentities
PROD_APP = "3f2e1d0c-9b8a-4765-a432-10fedcba9876"  # Pulumi.prod.yaml serving.consumers
IDENTITIES = {DEV_PREVIEW: "mlops-dev-preview", PROD_DEPLOY: "mlops-prod-deploy", PROD_PREVIEW: "mlops-prod-preview",
              PROD_APP: "bakehouse-app"}

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
             "groups": [{"display": "mlops-prod-owners", "value": "78"}]},
            *({"id": str(600 + k), "applicationId": app_id, "displayName": name, "active": True}
              for k, (app_id, name) in enumerate(IDENTITIES.items()))]
        self.metastore_summary: dict = {**ANSWERS["metastore_summary"],
                                        "storage_root": "abfss://uc@stmetastore.dfs.core.windows.net/root"}
        self.external_locations: list[dict] = []
        self.rule_sets: dict[str, dict] = {
            f"accounts/{ACCOUNT_ID}/servicePrincipals/{sp}/ruleSets/default": ANSWERS["rule_set"]
            for sp in (DEV_SP, PROD_SP)}
        self.serving: tuple[int, dict] = (200, ANSWERS["endpoints"])
        # the workspace's groups and users (SCIM); the service principals are above
        self.groups: list[str] = ["mlops-dev-owners", "mlops-prod-owners", "data-scientists", "ml-engineers",
                                  "bakehouse-apps", "metastore-admins"]
        self.users: list[str] = [ME]
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
            assignments = self.effective.get((securable_type, full_name), [])
            if "principal" in query:  # the API's filter: only that principal's assignments
                assignments = [a for a in assignments if a["principal"] == query["principal"][0]]
            return 200, {"privilege_assignments": assignments}
        if path in ("/api/2.0/preview/scim/v2/Groups", "/api/2.0/preview/scim/v2/Users"):
            key, pool = ("displayName", self.groups) if path.endswith("Groups") else ("userName", self.users)
            wanted = re.fullmatch(rf'{key} eq "(.+)"', query["filter"][0]).group(1)
            found = [{"id": str(abs(hash(n)) % 10_000), key: n} for n in pool if n == wanted]
            start = int(query.get("startIndex", ["1"])[0])
            page = found[start - 1:]
            return 200, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                         "totalResults": len(found), "startIndex": start, "itemsPerPage": len(page),
                         "Resources": page}
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
    assert line(result, "principals") == "principals pass all 6 principals the stack grants to exist"
    assert line(result, "model readers").startswith(
        "model readers skip mlops_dev.bakehouse_ml.bakehouse_autolog_model does not exist yet")
    assert line(result, "state roles").startswith("state roles skip PULUMI_BACKEND_URL_DEV (azblob://<container>) "
                                                  "and AZURE_STORAGE_ACCOUNT are not both set")
    assert result.output.strip().splitlines()[-1] == "9 pass, 1 warn, 2 skip"
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
        *[("GET", f"/api/2.0/preview/scim/v2/{kind}", {"attributes": "id", "filter": f'{key} eq "{name}"',
                                                        "startIndex": "1", "count": "10000"})
          for kind, key, name in [("Groups", "displayName", "mlops-dev-owners"),
                                  ("Groups", "displayName", "data-scientists"),
                                  ("Groups", "displayName", "ml-engineers"),
                                  *[("ServicePrincipals", "applicationId", sp)
                                    for sp in (PROD_DEPLOY, PROD_PREVIEW, DEV_PREVIEW)]]],
        ("GET", "/api/2.1/unity-catalog/models/mlops_dev.bakehouse_ml.bakehouse_autolog_model", {}),
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
    assert [p for p in workspace.paths() if "/models/mlops_dev." in p] == [f"/api/2.1/unity-catalog/models/{n}"
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
    assert result.output.strip().splitlines()[-1] == "8 pass, 1 warn, 1 fail, 2 skip"


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


# --- the identity model: every identity the stack names, its privileges, and the state container's roles -----
def test_a_principal_the_stack_grants_to_but_the_workspace_lacks_fails_naming_its_keys(workspace):
    workspace.groups.remove("ml-engineers")
    workspace.service_principals = [sp for sp in workspace.service_principals if sp["applicationId"] != DEV_PREVIEW]

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "principals").startswith(
        "principals FAIL not in this workspace: ml-engineers (grants.writers, serving.consumers); "
        f"{DEV_PREVIEW} (grants.previewIdentities): the deploy would fail granting to them")


def _deployed_dev_models(workspace, readers_lacking: dict[str, str] | None = None) -> None:
    """The dev stack deployed: its models exist and each model reader holds what the stack declares, except
    ``readers_lacking``: reader -> the one model it was not granted EXECUTE on."""
    from workloads.specs import load_spec  # noqa: F401 - the models are the stack's

    readers = [DEV_PREVIEW, PROD_DEPLOY, PROD_PREVIEW]
    for name in DEV_MODELS:
        workspace.models[name] = (200, {"full_name": name, "owner": "mlops-dev-owners"})
        workspace.effective[("REGISTERED_MODEL", name)] = [
            {"principal": r, "privileges": [{"privilege": "EXECUTE"}]} for r in readers
            if (readers_lacking or {}).get(r) != name]
    workspace.effective[("CATALOG", "mlops_dev")] = [
        {"principal": r, "privileges": [{"privilege": "USE_CATALOG"}]} for r in readers]
    workspace.effective[("SCHEMA", "mlops_dev.bakehouse_ml")] = [
        {"principal": r, "privileges": [{"privilege": "USE_SCHEMA", "inherited_from_type": None}]} for r in readers]


def test_each_model_reader_holds_use_catalog_use_schema_and_execute_once_deployed(workspace):
    _deployed_dev_models(workspace)

    result = doctor(workspace, "dev")

    assert line(result, "model readers") == ("model readers pass 3 reader(s) hold USE CATALOG, USE SCHEMA and EXECUTE "
                                             "on the 3 models")
    # asked per principal (the API's filter), never as the caller's own privileges
    asked = [q.get("principal") for _, p, q in workspace.requests if "/effective-permissions/REGISTERED_MODEL/" in p]
    assert sorted(set(asked)) == sorted([DEV_PREVIEW, PROD_DEPLOY, PROD_PREVIEW])


def test_a_preview_identity_without_execute_on_a_model_fails_with_the_deploy_as_the_fix(workspace):
    _deployed_dev_models(workspace, readers_lacking={DEV_PREVIEW: DEV_MODELS[2]})

    result = doctor(workspace, "dev")

    assert result.exit_code == 1
    assert line(result, "model readers").startswith(
        f"model readers FAIL {DEV_PREVIEW} lacks EXECUTE on {DEV_MODELS[2]} run `pulumi up --stack dev`")


CONTAINER_SCOPE = ("/subscriptions/0000/resourceGroups/rg-lakehouse-mlops/providers/Microsoft.Storage/"
                   "storageAccounts/stlakehousemlops/blobServices/default/containers/pulumi-state-{stack}")


class FakeAzureCli:
    """``az`` as the doctor calls it: the account id, then the role assignments on one container scope."""

    def __init__(self, assignments: dict[str, list[tuple[str, str]]]):
        self.assignments, self.calls = assignments, []  # stack -> [(principal app id, role)]

    def __call__(self, args):
        self.calls.append(args)
        if args[:3] == ["storage", "account", "show"]:
            return CONTAINER_SCOPE.split("/blobServices")[0]
        if args[:3] == ["role", "assignment", "list"]:
            stack = args[args.index("--scope") + 1].rsplit("-", 1)[1]
            return [{"principalName": who, "principalId": f"oid-{who}", "roleDefinitionName": role,
                     "scope": CONTAINER_SCOPE.format(stack=stack)} for who, role in self.assignments.get(stack, [])]
        raise AssertionError(f"the doctor may only read: az {' '.join(args)}")


def _state_roles(stack: str, az) -> object:
    from infra.config import stack_config_from_file
    from workloads.doctor import check_state_roles, other_stack_config

    config = stack_config_from_file(stack)
    env = {f"PULUMI_BACKEND_URL_{stack.upper()}": f"azblob://pulumi-state-{stack}",
           "AZURE_STORAGE_ACCOUNT": "stlakehousemlops"}
    return check_state_roles(config, other_stack_config(config), env, az)


def test_state_roles_pass_when_each_container_holds_only_its_stacks_identities():
    az = FakeAzureCli({"prod": [(PROD_DEPLOY, "Storage Blob Data Contributor"),
                                (PROD_PREVIEW, "Storage Blob Data Reader")]})

    result = _state_roles("prod", az)

    assert result.status == "pass", result
    assert result.detail == f"container pulumi-state-prod: preview identities read only; may write: {PROD_DEPLOY}"
    assert [c[:3] for c in az.calls] == [["storage", "account", "show"], ["role", "assignment", "list"]]
    assert az.calls[1][az.calls[1].index("--scope") + 1] == CONTAINER_SCOPE.format(stack="prod")


@pytest.mark.parametrize("assignments, problem", [
    ([(PROD_PREVIEW, "Storage Blob Data Contributor")],
     (f"preview identity {PROD_PREVIEW} lacks Storage Blob Data Reader; preview identity {PROD_PREVIEW} may write "
      "(Storage Blob Data Contributor)")),
    ([(PROD_PREVIEW, "Storage Blob Data Reader"), (DEV_PREVIEW, "Storage Blob Data Reader")],
     f"dev's identity {DEV_PREVIEW} holds Storage Blob Data Reader"),
    ([(PROD_PREVIEW, "Storage Blob Data Reader"), (DEV_SP, "Storage Blob Data Owner")],
     f"dev's identity {DEV_SP} holds Storage Blob Data Owner"),
], ids=["preview-may-write", "dev-preview-reads-prod", "dev-run-as-owns-prod"])
def test_state_roles_fail_when_a_preview_may_write_or_a_dev_identity_reaches_prod_state(assignments, problem):
    result = _state_roles("prod", FakeAzureCli({"prod": assignments}))

    assert result.status == "fail"
    assert result.detail == f"container pulumi-state-prod: {problem}"


def test_state_roles_without_the_azure_cli_warn_saying_what_was_not_read():
    def no_az(args):
        raise FileNotFoundError("the Azure CLI (az) is not installed")

    result = _state_roles("dev", no_az)

    assert result.status == "warn"
    assert result.detail == ("the roles on container pulumi-state-dev could not be read: the Azure CLI (az) is not "
                             "installed")
