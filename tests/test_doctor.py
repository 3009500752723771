"""``mlops doctor`` against a fake workspace on 127.0.0.1: the real databricks-sdk ``WorkspaceClient`` (built by
the command from ``--host`` and the SDK's own auth resolution) sends the requests, the fake answers in the
documented response shapes and records every request, so the tests see that the doctor only reads."""

from __future__ import annotations

import copy
import re

import pytest
from typer.testing import CliRunner

from tests.fakes import json_server
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
           "groups": [{"display": "mlops-deployers", "value": "77", "type": "direct"}]},
    "metastore": {"workspace_id": 1234567890123456, "metastore_id": METASTORE_ID, "default_catalog_name": "main"},
    "metastore_summary": {"metastore_id": METASTORE_ID, "name": "westeurope", "owner": "metastore-admins"},
    "warehouse": {"id": DEV_WAREHOUSE, "name": "mlops-dev", "state": "RUNNING", "cluster_size": "2X-Small",
                  "enable_serverless_compute": True, "warehouse_type": "PRO"},
    "rule_set": {"name": "", "etag": "RENUAAABhSweA4NvVmmUYdiU717H3Tgy0UJdor3gE4a+mq/oj9NjAf8ZsQ==",
                 "grant_rules": [{"role": "roles/servicePrincipal.manager", "principals": ["users/admin@bakehouse.example.com"]},
                                 {"role": "roles/servicePrincipal.user", "principals": ["groups/mlops-deployers"]}]},
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
                {"principal": "mlops-deployers", "privileges": [{"privilege": "CREATE_CATALOG"}]},
                {"principal": "data-scientists", "privileges": [{"privilege": "USE_CATALOG"}]}]}
        self.warehouses: dict[str, dict] = {DEV_WAREHOUSE: ANSWERS["warehouse"],
                                            PROD_WAREHOUSE: {**ANSWERS["warehouse"], "id": PROD_WAREHOUSE,
                                                             "name": "mlops-prod"}}
        self.service_principals: list[dict] = [
            {"id": "555", "applicationId": DEV_SP, "displayName": "mlops-dev-jobs", "active": True},
            {"id": "556", "applicationId": PROD_SP, "displayName": "mlops-prod-jobs", "active": True}]
        self.rule_sets: dict[str, dict] = {
            f"accounts/{ACCOUNT_ID}/servicePrincipals/{sp}/ruleSets/default": ANSWERS["rule_set"]
            for sp in (DEV_SP, PROD_SP)}
        self.serving: tuple[int, dict] = (200, ANSWERS["endpoints"])
        self.models: dict[str, tuple[int, dict]] = {}

    def handle(self, method, path, query, body, headers):
        self.requests.append((method, path, {k: v[0] for k, v in query.items()}))
        missing = (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"fake has no {method} {path}"})
        if method != "GET":
            return 405, {"error_code": "BAD_REQUEST", "message": "the doctor must only read"}
        if path == "/.well-known/databricks-config":  # what databricks-sdk asks when a client is created
            return 200, {"oidc_endpoint": f"{self.url}/oidc", "account_id": ACCOUNT_ID,
                         "workspace_id": "1234567890123456"}
        if path == "/api/2.0/preview/scim/v2/Me":
            return self.me
        if path == "/api/2.1/unity-catalog/current-metastore-assignment":
            return self.metastore
        if path == "/api/2.1/unity-catalog/metastore_summary":
            return 200, ANSWERS["metastore_summary"]
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
    for key in ("DATABRICKS_AUTH_TYPE", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "ARM_CLIENT_ID",
                "ARM_CLIENT_SECRET", "ARM_TENANT_ID", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_ACCOUNT_ID",
                "DATABRICKS_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/databrickscfg")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-fake")  # the user's own auth, as databricks-sdk finds it
    with json_server(fake.handle) as url:
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
    assert line(result, "identity") == f"identity pass user {ME} (groups: mlops-deployers)"
    assert line(result, "metastore") == f"metastore pass metastore {METASTORE_ID}"
    assert line(result, "catalog") == ("catalog pass catalog mlops_dev does not exist yet; you hold CREATE CATALOG "
                                       "on the metastore: the deploy creates it")
    assert line(result, "warehouse") == f"warehouse pass SQL warehouse {DEV_WAREHOUSE} (mlops-dev, RUNNING)"
    assert line(result, "run-as") == (f"run-as pass service principal mlops-dev-jobs ({DEV_SP}) is active; you may use "
                                      "it (via groups/mlops-deployers)")
    assert line(result, "model serving") == "model serving pass Model Serving answers (1 endpoint)"
    # Serverless jobs: Databricks has no read-only API for it, and the line says so.
    assert line(result, "serverless jobs").startswith(
        "serverless jobs warn not checked: Databricks has no read-only API for it; Unity Catalog (its requirement) "
        "is enabled")
    assert "FAIL" not in result.output and "dev model" not in result.output  # dev is promoted from nothing
    assert result.output.strip().splitlines()[-1] == "6 pass, 1 warn"
    # Read-only: every request a GET, exactly these, in this order.
    assert {method for method, _, _ in workspace.requests} == {"GET"}
    assert workspace.requests == [
        ("GET", "/.well-known/databricks-config", {}),
        ("GET", "/api/2.0/preview/scim/v2/Me", {}),
        ("GET", "/api/2.1/unity-catalog/current-metastore-assignment", {}),
        ("GET", "/api/2.1/unity-catalog/catalogs/mlops_dev", {}),
        ("GET", f"/api/2.1/unity-catalog/effective-permissions/METASTORE/{METASTORE_ID}", {"max_results": "0"}),
        ("GET", f"/api/2.0/sql/warehouses/{DEV_WAREHOUSE}", {}),
        ("GET", "/api/2.0/preview/scim/v2/ServicePrincipals",
         {"filter": f'applicationId eq "{DEV_SP}"', "startIndex": "1", "count": "10000"}),
        ("GET", "/api/2.0/preview/accounts/access-control/rule-sets",
         # (plus the documented empty `etag=`, "no freshness requirement", which parse_qs leaves out)
         {"name": f"accounts/{ACCOUNT_ID}/servicePrincipals/{DEV_SP}/ruleSets/default"}),
        ("GET", "/api/2.0/serving-endpoints", {}),
    ]


def test_a_good_prod_workspace_reads_the_dev_models_promote_copies(workspace):
    workspace.catalogs["mlops_prod"] = {"name": "mlops_prod", "owner": "mlops-deployers",
                                        "catalog_type": "MANAGED_CATALOG", "metastore_id": METASTORE_ID}
    for name in DEV_MODELS:
        catalog, schema, model = name.split(".")
        workspace.models[name] = (200, {"full_name": name, "catalog_name": catalog, "schema_name": schema,
                                        "name": model, "owner": "mlops-deployers"})

    result = doctor(workspace, "prod")

    assert result.exit_code == 0, result.output
    # The catalog exists and is owned by a group of the caller; create: true cannot tell whether this stack
    # created it, so it warns with the fix for a first deploy.
    assert line(result, "catalog") == (
        "catalog warn catalog mlops_prod exists, owned by mlops-deployers (you) if this stack did not create it, set "
        "catalog.create: false (reuse it) or `pulumi import databricks:index/catalog:Catalog catalog mlops_prod`")
    assert lines_with(result, "pass")[-3:] == [f"dev model pass {name} is readable" for name in DEV_MODELS]
    assert [p for p in workspace.paths() if "/models/" in p] == [f"/api/2.1/unity-catalog/models/{n}"
                                                                 for n in DEV_MODELS]
    assert {method for method, _, _ in workspace.requests} == {"GET"}
